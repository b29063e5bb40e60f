"""Small frame helpers shared by the page queries: month spines, ratios, month ranges."""

from __future__ import annotations

from datetime import date

import numpy as np
import pandas as pd


def month_spine(start: date, end: date) -> pd.DataFrame:
    """One row per month from `start` to `end` inclusive (column `month`, datetime64)."""
    return pd.DataFrame({"month": pd.date_range(pd.Timestamp(start), pd.Timestamp(end), freq="MS")})


def on_spine(df: pd.DataFrame, start: date, end: date, fill_zero: tuple[str, ...] = ()) -> pd.DataFrame:
    """`df` (a `month` column) on every month from `start` to `end`; `fill_zero` columns 0 where missing."""
    spine = month_spine(start, end)
    if df.empty:
        out = spine
        for col in df.columns:
            if col != "month":
                out[col] = np.nan
    else:
        df = df.assign(month=pd.to_datetime(df["month"]))
        out = spine.merge(df, on="month", how="left")
    for col in fill_zero:
        if col in out:
            out[col] = out[col].fillna(0)
    return out


def ratio(numerator: float, denominator: float, scale: float = 1.0) -> float | None:
    """scale × numerator ÷ denominator, or None when the denominator is 0 or missing."""
    if denominator is None or pd.isna(denominator) or denominator == 0:
        return None
    return float(numerator) / float(denominator) * scale


def series_ratio(num: pd.Series, den: pd.Series, scale: float = 1.0) -> pd.Series:
    """scale × num ÷ den per row, NaN where den is 0."""
    return (num.astype(float) / den.astype(float).where(den != 0)) * scale


def nan_to_none(value) -> float | None:
    """A number as float, None for None or NaN."""
    return None if value is None or pd.isna(value) else float(value)


def in_months(df: pd.DataFrame, start: date, end_excl: date) -> pd.DataFrame:
    """The rows of `df` whose `month` is from `start` to before `end_excl`."""
    return df[(df["month"] >= pd.Timestamp(start)) & (df["month"] < pd.Timestamp(end_excl))]
