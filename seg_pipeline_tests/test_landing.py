"""Reading landed files: many at once gives exactly what one by one gives, and names every bad file."""

from datetime import date, timedelta
from pathlib import Path

import polars as pl

from seg_pipeline import landing

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
