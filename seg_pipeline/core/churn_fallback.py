"""Churn risk while the churn model cannot be trained (too little history, one class only, too few customers).

The first that applies, fitted on the buyers at D (risk = P(no completed order in the h days after D)):

1. ``bgnbd``: BG/NBD's P(no purchase in h) from params fitted on the buyers' (frequency, recency, T); needs
   ``MIN_BGNBD_BUYERS`` buyers, one of them a repeat buyer, and a finite fit.
2. ``prior``: ``1 - exp(-d / (2 g)) * (1 - exp(-h / g))`` with d = days_since_last_order and
   g = (T + h) / (frequency + 1), the customer's mean gap between purchase days shrunk towards one purchase
   per horizon: the customer is alive unless silent for long against their gap, and buys within h at rate
   1 / g. It grows with d (a longer silence both lowers the survival term and, through T, the rate).

Both are clipped to [1e-4, 1 - 1e-4] like the model, NaN for prospects. A fallback is saved and registered
like a trained model, so a version can be rebuilt with exactly its churn scores.
"""

import hashlib
import json
from dataclasses import dataclass
from datetime import date
from typing import Literal

import numpy as np
import polars as pl

from seg_pipeline.core.bgnbd import BgNbdParams, fit_bgnbd, probability_no_purchase

MIN_BGNBD_BUYERS = 30
BGNBD_PENALIZER = 1e-3  # as the churn model's BG/NBD: keeps a fit on a short history finite
_P_MIN, _P_MAX = 1e-4, 1 - 1e-4


@dataclass(frozen=True)
class ChurnFallback:
    """A documented churn score in place of the model: ``method`` 'bgnbd' (with ``bgnbd``) or 'prior'."""

    method: Literal["bgnbd", "prior"]
    bgnbd: BgNbdParams | None
    horizon_days: int
    trained_as_of: date

    def predict_risk(self, features: pl.DataFrame) -> np.ndarray:
        """Churn probability per row; NaN for prospects (frequency null)."""
        x, tx, t_obs, silent = (
            features[c].cast(pl.Float64).to_numpy() for c in ("frequency", "recency", "T", "days_since_last_order")
        )
        out = np.full(features.height, np.nan)
        buyers = ~np.isnan(x)
        if self.bgnbd is not None:
            risk = probability_no_purchase(self.bgnbd, self.horizon_days, x[buyers], tx[buyers], t_obs[buyers])
        else:
            risk = prior_risk(x[buyers], t_obs[buyers], silent[buyers], self.horizon_days)
        out[buyers] = np.clip(risk, _P_MIN, _P_MAX)
        return out

    def content_hash(self) -> str:
        """sha256 of the fallback's canonical JSON."""
        spec = {
            "method": self.method,
            "bgnbd": None if self.bgnbd is None else self.bgnbd.to_dict(),
            "horizon_days": self.horizon_days,
            "trained_as_of": self.trained_as_of.isoformat(),
        }
        return hashlib.sha256(json.dumps(spec, sort_keys=True).encode()).hexdigest()


def churn_method(metrics: dict) -> str:
    """'model', 'bgnbd' or 'prior': where the churn scores of a registered model's `metrics` come from."""
    return metrics.get("method", "model")


def prior_risk(
    frequency: np.ndarray, T: np.ndarray, days_since_last_order: np.ndarray, horizon_days: int
) -> np.ndarray:
    """The ``prior`` formula of the module docstring, per customer."""
    gap = (T + horizon_days) / (frequency + 1)
    return 1 - np.exp(-days_since_last_order / (2 * gap)) * (1 - np.exp(-horizon_days / gap))


def fallback_churn(features: pl.DataFrame, as_of: date, horizon_days: int) -> ChurnFallback:
    """The first applicable fallback (see the module docstring) for the feature table at ``as_of``."""
    buyers = features.filter(pl.col("frequency").is_not_null())
    if buyers.is_empty():
        raise ValueError(f"no completed order on or before {as_of}: nothing to score")
    params = None
    if buyers.height >= MIN_BGNBD_BUYERS and (buyers["frequency"] > 0).any():
        try:
            params = fit_bgnbd(buyers["frequency"], buyers["recency"], buyers["T"], penalizer=BGNBD_PENALIZER)
        except (ValueError, RuntimeError):
            params = None
    return ChurnFallback("prior" if params is None else "bgnbd", params, horizon_days, as_of)
