"""Table ingest: CSV files with a label column, and PROBEN1 ``.dt`` files.

CSV files from the wild have holes and typos; they are repaired by a stated rule (median
for numbers, most frequent value for categories, stray text in a numeric column treated as
missing) and every repair is reported with its column and count. Non-numeric columns stay
categorical: a downstream tabular VAE one-hot encodes them.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .datasets import LabelledTable
from .report import IngestError, IngestReport

NUMERIC_SHARE = 0.9
"""A text column whose non-missing values are at least this share numbers is numeric (with typos)."""

EXTRA_MISSING_MARKERS = ["?"]
"""Besides pandas' defaults (empty, NA, NaN, null, ...): UCI data marks missing values with '?'."""

PROBEN1_HEADER_KEYS = ("bool_in", "real_in", "bool_out", "real_out",
                       "training_examples", "validation_examples", "test_examples")


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------
def _read_csv(path: Path, report: IngestReport) -> pd.DataFrame:
    """Read with UTF-8 (latin-1 fallback); sniff the separator when a comma gives one column."""
    options = dict(skipinitialspace=True, na_values=EXTRA_MISSING_MARKERS)
    try:
        try:
            frame = pd.read_csv(path, encoding="utf-8-sig", **options)
        except UnicodeDecodeError:
            frame = pd.read_csv(path, encoding="latin-1", **options)
            report.note(f"{path.name}: not valid UTF-8; read as latin-1")
        if frame.shape[1] == 1 and any(sep in str(frame.columns[0]) for sep in (";", "\t", "|")):
            frame = pd.read_csv(path, sep=None, engine="python", encoding="utf-8-sig", **options)
            report.note(f"{path.name}: separator detected automatically (not a comma)")
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError, OSError) as exc:
        raise IngestError(f"{path}: not a readable CSV file ({exc})", report) from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame


def _examples(values: pd.Series, limit: int = 3) -> str:
    shown = [repr(v) for v in pd.unique(values)[:limit]]
    return ", ".join(shown) + (", ..." if values.nunique() > limit else "")


def _coerce_numeric(column: str, series: pd.Series, report: IngestReport) -> tuple[pd.Series, list[str]]:
    """A text column that is mostly numbers becomes numeric; the stray values become missing."""
    present = series.notna()
    numbers = pd.to_numeric(series.where(present), errors="coerce")
    stray = present & numbers.isna()
    if present.sum() == 0 or (present.sum() - stray.sum()) / present.sum() < NUMERIC_SHARE:
        return series, []
    repair = (f"column {column!r}: {int(stray.sum())} non-numeric value(s) ({_examples(series[stray])}) "
              "in a numeric column treated as missing")
    report.note(repair)
    return numbers, [repair]


def _impute(column: str, series: pd.Series, report: IngestReport) -> tuple[pd.Series, list[str]]:
    """Fill missing values: numeric with the median, categorical with the mode."""
    n_missing = int(series.isna().sum())
    if n_missing == 0:
        return series, []
    if pd.api.types.is_numeric_dtype(series):
        fill = series.median()
        repair = f"column {column!r}: {n_missing} missing value(s) imputed with the median {fill:g}"
    else:
        fill = series.mode(dropna=True).iloc[0]
        repair = f"column {column!r}: {n_missing} missing value(s) imputed with the most frequent value {fill!r}"
    report.note(repair)
    return series.fillna(fill), [repair]


def _clean_features(features: pd.DataFrame, report: IngestReport) -> tuple[pd.DataFrame, list[str]]:
    """Numeric columns as floats/ints, the rest as pandas categories, no missing values left."""
    repairs: list[str] = []
    cleaned = {}
    for column in features.columns:
        series = features[column]
        if series.isna().all():
            repair = f"column {column!r} has no values at all: dropped"
            report.note(repair)
            repairs.append(repair)
            continue
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            series = series.map(lambda v: v.strip() if isinstance(v, str) else v)
            series, found = _coerce_numeric(column, series, report)
            repairs += found
        series, found = _impute(column, series, report)
        repairs += found
        if not (pd.api.types.is_numeric_dtype(series) or pd.api.types.is_bool_dtype(series)):
            # category keeps the full set of levels on every subset: one-hot widths stay stable.
            series = series.astype(str).astype("category")
        cleaned[column] = series
    return pd.DataFrame(cleaned, index=features.index), repairs


def _class_values(labels: pd.Series) -> tuple[list[str], np.ndarray]:
    """Class names (sorted; numerically when the labels are numbers) and each row's class index."""
    if pd.api.types.is_numeric_dtype(labels):
        values = labels.to_numpy()
        # A label column with holes is read as float: 1.0 is class "1", not "1.0".
        if np.issubdtype(values.dtype, np.floating) and np.all(values == np.round(values)):
            values = values.astype(np.int64)
    else:
        values = labels.map(lambda v: v.strip() if isinstance(v, str) else str(v)).to_numpy(dtype=str)
    unique, index = np.unique(values, return_inverse=True)
    return [str(v.item() if hasattr(v, "item") else v) for v in unique], index.astype(np.int64)


def ingest_csv(path: Path, label_column: str, report: IngestReport) -> LabelledTable:
    """Read a CSV with a label column into a LabelledTable, repairing and reporting what it must."""
    frame = _read_csv(path, report)
    if label_column not in frame.columns:
        columns = ", ".join(repr(c) for c in frame.columns)
        raise IngestError(f"{path.name}: label column {label_column!r} not found; the columns are: {columns}. "
                          "Pass label_column=<the column holding the class>.", report)
    labels = frame[label_column]
    missing = labels.isna() | labels.map(lambda v: isinstance(v, str) and not v.strip())
    if missing.any():
        rows = ", ".join(str(i) for i in frame.index[missing][:10]) + (", ..." if missing.sum() > 10 else "")
        report.note(f"{int(missing.sum())} row(s) with a missing label in column {label_column!r} dropped "
                    f"(data rows {rows}, counted from 0)")
        frame = frame[~missing]
    features = frame.drop(columns=[label_column])
    if features.shape[1] == 0:
        raise IngestError(f"{path.name}: no feature columns besides the label column {label_column!r}", report)
    if frame.empty:
        raise IngestError(f"{path.name}: no rows with a label in column {label_column!r}", report)
    class_names, label_index = _class_values(frame[label_column])
    if len(class_names) < 2:
        raise IngestError(f"{path.name}: only one class ({class_names[0]!r}) in label column {label_column!r}; "
                          "need at least 2 classes", report)
    features, repairs = _clean_features(features, report)
    sources = [f"{path.name}:row[{i}]" for i in frame.index]
    table = LabelledTable(features, label_index, class_names, sources)
    shape = f"{len(table)} rows, {features.shape[1]} feature columns, {len(class_names)} classes"
    if repairs or missing.any():
        dropped = [f"{int(missing.sum())} unlabelled row(s) dropped"] if missing.any() else []
        report.add(path.name, "repaired", f"{shape}; " + "; ".join(dropped + repairs))
    else:
        report.add(path.name, "loaded", shape)
    report.class_counts = table.counts()
    return table


# --------------------------------------------------------------------------------------
# PROBEN1 .dt
# --------------------------------------------------------------------------------------
def _proben1_header(lines: list[str], path: Path) -> tuple[dict[str, int], int]:
    """The ``key=value`` header and the index of the first data line."""
    header: dict[str, int] = {}
    for i, line in enumerate(lines):
        if "=" not in line:
            break
        key, _, value = line.partition("=")
        try:
            header[key.strip()] = int(value.strip())
        except ValueError as exc:
            raise IngestError(f"{path.name}: header line {i + 1} {line!r}: value is not an integer") from exc
    else:
        i = len(lines)
    missing = [k for k in PROBEN1_HEADER_KEYS if k not in header]
    if missing:
        raise IngestError(f"{path.name}: not a PROBEN1 file: header lacks {', '.join(missing)} "
                          f"(expected lines {', '.join(k + '=..' for k in PROBEN1_HEADER_KEYS)})")
    return header, i


def read_proben1(path: Path, report: IngestReport) -> tuple[LabelledTable, LabelledTable]:
    """(training + validation examples, test examples) of a PROBEN1 classification file.

    Features are columns ``x0..x{k-1}``; the label is the argmax of the one-hot outputs
    and class names are "0".."c-1" (c = number of outputs, whether or not all occur).
    """
    lines = path.read_text(encoding="ascii", errors="replace").splitlines()
    header, first = _proben1_header(lines, path)
    n_in = header["bool_in"] + header["real_in"]
    n_out = header["bool_out"] + header["real_out"]
    if header["real_out"]:
        raise IngestError(f"{path.name}: real_out={header['real_out']}: a regression problem (real-valued "
                          "outputs); genaug ingests classification problems (bool_out one-hot outputs) only")
    if n_out < 2:
        raise IngestError(f"{path.name}: {n_out} output(s); a classification problem needs at least 2 one-hot outputs")
    n_train, n_valid, n_test = (header[k] for k in ("training_examples", "validation_examples", "test_examples"))
    n_rows = n_train + n_valid + n_test
    # Parse the token stream, not lines: the format does not promise one example per line.
    try:
        values = np.array(" ".join(lines[first:]).split(), dtype=np.float64)
    except ValueError as exc:
        raise IngestError(f"{path.name}: data holds a value that is not a number ({exc})") from exc
    width = n_in + n_out
    if values.size != n_rows * width:
        raise IngestError(f"{path.name}: header promises {n_rows} examples x ({n_in} inputs + {n_out} outputs) "
                          f"= {n_rows * width} numbers, the data has {values.size}")
    matrix = values.reshape(n_rows, width)
    outputs = matrix[:, n_in:]
    not_one_hot = int(np.sum((outputs.sum(axis=1) != 1) | ~np.isin(outputs, (0.0, 1.0)).all(axis=1)))
    if not_one_hot:
        report.note(f"{path.name}: {not_one_hot} example(s) have outputs that are not one-hot; label = argmax")
    frame = pd.DataFrame(matrix[:, :n_in], columns=[f"x{j}" for j in range(n_in)])
    table = LabelledTable(frame, outputs.argmax(axis=1), [str(c) for c in range(n_out)],
                          [f"{path.name}:example[{i}]" for i in range(n_rows)])
    split = n_train + n_valid
    data, test = table.subset(np.arange(split)), table.subset(np.arange(split, n_rows))
    report.note(f"PROBEN1 {path.name}: {n_in} inputs, {n_out} classes; data = {n_train} training + {n_valid} "
                f"validation examples, test = {n_test} test examples (the file's own split)")
    report.add(path.name, "loaded", f"{n_rows} examples: {split} data, {n_test} test")
    report.class_counts = data.counts()
    return data, test
