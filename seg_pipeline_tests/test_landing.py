"""Reading landed files: many at once gives exactly what one by one gives, and names every bad file."""

import gzip
from datetime import date, timedelta
from pathlib import Path

import polars as pl

from seg_pipeline.storage import landing

HEADER = "order_id,customer_id,order_ts,amount"


def land(folder: Path, day: date, text: str, suffix: str = ".csv") -> None:
    (folder / "orders").mkdir(parents=True, exist_ok=True)
    (folder / "orders" / f"{day}{suffix}").write_bytes(text.encode())


def test_reading_many_files_equals_reading_them_one_by_one(tmp_path: Path) -> None:
    days = [date(2026, 5, 1) + timedelta(days=i) for i in range(5)]
    for i, day in enumerate(days[:3]):  # one group: the same header
        land(tmp_path, day, HEADER + "\n" + "".join(f"o{i}{r},c{r},{day}T10:00:00,{r}\n" for r in range(i + 2)))
    land(tmp_path, days[3], "\ufeff" + HEADER + ",note\r\no9,c9,x,1,hello\r\n")  # BOM, CRLF, an extra column
    land(tmp_path, days[4], HEADER + "\n")  # header only
    files = [file for fs in landing.scan(tmp_path, "orders").values() for file in fs]

    frames, errors = landing.read_many(files)

    assert errors == []
    one_by_one = pl.concat([landing.read_raw(file) for file in files], how="vertical_relaxed")
    many = pl.concat(frames, how="vertical_relaxed").sort("order_day", "source_row")
    assert many.equals(one_by_one.sort("order_day", "source_row"))
    assert many.filter(pl.col("order_day") == days[2])["source_row"].to_list() == [1, 2, 3, 4]


def test_a_bad_file_in_a_group_is_named_and_the_others_are_read(tmp_path: Path) -> None:
    days = [date(2026, 5, 1) + timedelta(days=i) for i in range(3)]
    for day in days:
        land(tmp_path, day, HEADER + f"\no-{day},c,{day}T10:00:00,1\n")
    land(tmp_path, days[1], HEADER + '\n"unterminated,c,x,1\n')  # same header, broken body
    files = [file for fs in landing.scan(tmp_path, "orders").values() for file in fs]

    frames, errors = landing.read_many(files)

    assert [error.path for error in errors] == [f"orders/{days[1]}.csv"]
    assert str(errors[0]).startswith(f"orders/{days[1]}.csv: unreadable csv")
    read = pl.concat(frames)
    assert sorted(read["order_id"].to_list()) == [f"o-{days[0]}", f"o-{days[2]}"]


def test_files_the_pipeline_cannot_use_are_listed_with_their_reason(tmp_path: Path) -> None:
    day = date(2025, 6, 30)
    land(tmp_path, day, HEADER + "\n", ".csv")
    for name in ("latest.csv", "2025-13-45.csv", f"{day}.json", f"{day}.csv.tmp"):
        (tmp_path / "orders" / name).write_text(HEADER + "\n")
    (tmp_path / "orders" / f"{day}-archive").mkdir()

    assert [f.name for fs in landing.scan(tmp_path, "orders").values() for f in fs] == [f"orders/{day}.csv"]
    assert landing.unused_files(tmp_path, "orders") == [
        ("orders/2025-06-30-archive", "a folder, not a file"),
        ("orders/2025-06-30.csv.tmp", "not .csv, .csv.gz or .parquet"),
        ("orders/2025-06-30.json", "not .csv, .csv.gz or .parquet"),
        ("orders/2025-13-45.csv", "2025-13-45 is not a date"),
        ("orders/latest.csv", "no date in the name"),
    ]
    assert landing.unused_files(tmp_path, "profiles") == []  # no folder: nothing landed, nothing unused


def test_gzipped_csv_and_any_parquet_compression_are_read(tmp_path: Path) -> None:
    days = [date(2026, 5, 1) + timedelta(days=i) for i in range(4)]
    text = HEADER + "\n" + "".join(f"o{r},c{r},2026-05-01T10:00:00,{r}\n" for r in range(3))
    for day in days[:2]:  # a group of .csv.gz files sharing a header
        land(tmp_path, day, "", ".csv.gz")
        (tmp_path / "orders" / f"{day}.csv.gz").write_bytes(gzip.compress(text.encode()))
    land(tmp_path, days[2], text)
    plain = pl.read_csv(tmp_path / "orders" / f"{days[2]}.csv", infer_schema=False)
    for compression in ("snappy", "gzip", "zstd", "lz4", "brotli"):
        plain.write_parquet(tmp_path / "orders" / f"{days[3]}-{compression}.parquet", compression=compression)
    files = [file for fs in landing.scan(tmp_path, "orders").values() for file in fs]
    assert len(files) == 8

    frames, errors = landing.read_many(files)

    assert errors == []
    read = pl.concat(frames, how="vertical_relaxed")
    assert read.group_by("source_file").len().get_column("len").to_list() == [3] * 8
    assert set(read["order_id"]) == {"o0", "o1", "o2"}


def test_a_ragged_row_is_marked_with_its_line_and_the_rest_of_the_file_is_read(tmp_path: Path) -> None:
    days = [date(2026, 5, 1) + timedelta(days=i) for i in range(3)]
    for day in days:
        land(tmp_path, day, HEADER + f"\no-{day},c,{day}T10:00:00,1\n")
    land(
        tmp_path,
        days[1],
        HEADER + "\na,c,2026-05-02T10:00:00,1\n"
        'b,c,"2026-05-02\nT10:00:00",2,surplus,more\n'  # a quoted line break: the next record starts on line 5
        "c,c,2026-05-02T10:00:00\n"
        "d,c,2026-05-02T10:00:00,4\n",
    )
    files = [file for fs in landing.scan(tmp_path, "orders").values() for file in fs]

    frames, errors = landing.read_many(files)

    assert errors == []
    read = pl.concat(frames, how="diagonal_relaxed").sort("order_day", "source_row")
    assert read["order_id"].to_list() == [f"o-{days[0]}", "a", "b", "c", "d", f"o-{days[2]}"]
    bad = read.filter(pl.col("row_error").is_not_null())
    assert bad.select("order_id", "source_row", "row_error").rows() == [
        ("b", 2, "line 3: 6 fields, the header has 4"),
        ("c", 3, "line 5: 3 fields, the header has 4"),
    ]
    assert bad["amount"].to_list() == ["2", None]
    assert bad["extra"][0] == '{"fields_beyond_header":["surplus","more"]}'


def test_nested_parquet_columns_are_kept_as_json_in_extra(tmp_path: Path) -> None:
    day = date(2026, 5, 1)
    (tmp_path / "orders").mkdir()
    pl.DataFrame(
        {
            "order_id": ["a", "b"], "customer_id": ["c1", "c2"], "order_ts": [f"{day}T10:00:00"] * 2,
            "amount": [1.5, 2.0], "basket": [{"sku": "x", "n": 2}, {"sku": "y", "n": 1}], "tags": [["gift"], []],
        }
    ).write_parquet(tmp_path / "orders" / f"{day}.parquet")  # fmt: skip
    (file,) = landing.scan(tmp_path, "orders")[day]

    raw = landing.read_raw(file)

    assert raw["amount"].to_list() == ["1.5", "2.0"]
    assert raw["extra"].to_list() == [
        '{"basket":{"sku":"x","n":2},"tags":["gift"]}',
        '{"basket":{"sku":"y","n":1},"tags":[]}',
    ]
