"""Ingest of .npz arrays, CSV tables and the six PROBEN1 problems."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from genaug.data import IngestError, LabelledImages, LabelledTable, find_data_file, ingest, load_proben1

# Never opens the registry database: runs once, in the SQLite run (tests/conftest.py checks it).
pytestmark = pytest.mark.no_database


# --------------------------------------------------------------------------------------
# .npz
# --------------------------------------------------------------------------------------
def test_npz_train_and_test(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "arrays.npz"
    np.savez(path, x_train=rng.integers(0, 256, (20, 6, 6), dtype=np.uint8), y_train=np.repeat([3, 10, 7, 3], 5),
             x_test=rng.integers(0, 256, (4, 6, 6), dtype=np.uint8), y_test=np.array([10, 7, 3, 3]))
    result = ingest(path)
    assert isinstance(result.data, LabelledImages) and isinstance(result.test, LabelledImages)
    assert result.data.images.shape == (20, 6, 6, 1) and result.test.images.shape == (4, 6, 6, 1)
    assert result.data.class_names == ["3", "7", "10"]  # sorted by value, not as text
    assert list(result.test.labels) == [2, 1, 0, 0]
    assert result.data.sources[1] == "arrays.npz:x_train[1]" and result.report.loaded[0].path == "arrays.npz"
    data, test = result  # unpacks as (data, test)
    assert test is result.test


def test_npz_floats_are_scaled_and_options_apply(tmp_path):
    path = tmp_path / "floats.npz"
    x = np.zeros((4, 8, 8, 3), np.float32)
    x[0] = 1.0
    x[1, ..., 0] = 0.5
    np.savez(path, x_train=x, y_train=np.array(["b", "a", "b", "a"]))
    result = ingest(path)
    assert result.data.images.dtype == np.uint8 and result.data.images[0].min() == 255
    assert result.data.images[1, 0, 0].tolist() == [128, 0, 0]
    assert result.data.class_names == ["a", "b"] and result.test is None
    assert any("scaled to uint8" in n for n in result.report.notes)
    small = ingest(path, image_size=4, channels="L").data
    assert small.images.shape == (4, 4, 4, 1)


def test_npz_errors_name_the_key(tmp_path):
    path = tmp_path / "partial.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), labels=np.array([0, 1]))
    with pytest.raises(IngestError, match=r"missing key 'y_train'.*'labels'"):
        ingest(path)
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 1]), x_test=np.zeros((1, 4, 4)))
    with pytest.raises(IngestError, match="missing key 'y_test'"):
        ingest(path)
    np.savez(path, x_train=np.full((2, 4, 4), 3.0), y_train=np.array([0, 1]))
    with pytest.raises(IngestError, match=r"x_train holds floats in \[3, 3\]"):
        ingest(path)
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.array([0, 1]),
             x_test=np.zeros((1, 4, 4), np.uint8), y_test=np.array([5]))
    with pytest.raises(IngestError, match="y_test holds labels not in y_train: \\['5'\\]"):
        ingest(path)


# --------------------------------------------------------------------------------------
# CSV
# --------------------------------------------------------------------------------------
CSV_TEXT = """age,income,colour,label
30,1000,red,yes
,2000,blue,no
50,abc,,yes
40,4000,red,no
20,5000,red,
35,6000,blue,no
45,7000,red,yes
25,8000,blue,no
55,9000,red,yes
60,10000,red,no
65,11000,blue,yes
"""


def test_csv_repairs_are_made_and_reported(tmp_path):
    path = tmp_path / "customers.csv"
    path.write_text(CSV_TEXT, encoding="utf-8")
    result = ingest(path)
    table, report = result.data, result.report
    assert isinstance(table, LabelledTable) and result.test is None
    assert len(table) == 10  # the row without a label is dropped
    assert any("1 row(s) with a missing label in column 'label' dropped" in n for n in report.notes)
    assert table.class_names == ["no", "yes"]
    assert not table.frame.isna().any().any()
    assert pd.api.types.is_numeric_dtype(table.frame["age"]) and pd.api.types.is_numeric_dtype(table.frame["income"])
    assert isinstance(table.frame["colour"].dtype, pd.CategoricalDtype)
    notes = "\n".join(report.notes)
    assert "column 'income': 1 non-numeric value(s) ('abc') in a numeric column treated as missing" in notes
    assert "column 'income': 1 missing value(s) imputed with the median 7000" in notes
    assert "column 'age': 1 missing value(s) imputed with the median 45" in notes
    assert "column 'colour': 1 missing value(s) imputed with the most frequent value 'red'" in notes
    assert table.frame.loc[1, "age"] == 45 and table.frame.loc[2, "colour"] == "red"
    verdict = report.verdict_for("customers.csv")
    assert verdict.status == "repaired" and "income" in verdict.reason
    assert table.sources[4] == "customers.csv:row[5]"  # original row numbers survive the drop
    assert table.numeric_matrix().shape == (10, 2 + 2)  # colour one-hot: blue, red


def test_csv_clean_file_loads_with_numeric_labels(tmp_path):
    path = tmp_path / "clean.csv"
    path.write_text("x,y,target\n1,2,0\n3,4,1\n5,6,1\n7,8,2\n", encoding="utf-8")
    result = ingest(path, label_column="target")
    assert result.data.class_names == ["0", "1", "2"] and list(result.data.labels) == [0, 1, 1, 2]
    assert result.report.verdict_for("clean.csv").status == "loaded" and result.report.notes == []


def test_csv_errors(tmp_path):
    path = tmp_path / "wrong.csv"
    path.write_text("a,b,class\n1,2,x\n3,4,y\n", encoding="utf-8")
    with pytest.raises(IngestError) as caught:
        ingest(path)
    message = str(caught.value)
    assert "label column 'label' not found" in message and "'a', 'b', 'class'" in message
    assert isinstance(caught.value, ValueError) and caught.value.report.source.endswith("wrong.csv")
    path.write_text("a,label\n1,x\n2,x\n3,\n", encoding="utf-8")
    with pytest.raises(IngestError, match="only one class \\('x'\\)"):
        ingest(path)


# --------------------------------------------------------------------------------------
# PROBEN1
# --------------------------------------------------------------------------------------
def _header(path) -> dict[str, int]:
    with open(path, encoding="ascii") as f:
        return dict((k, int(v)) for k, v in (next(f).strip().split("=") for _ in range(7)))


@pytest.mark.parametrize("name", ["card", "diabetes", "gene", "glass", "horse", "thyroid"])
def test_proben1_problems_load_with_the_header_counts(name):
    header = _header(find_data_file(f"proben1/{name}/{name}1.dt"))
    result = load_proben1(name)
    data, test = result
    n_in = header["bool_in"] + header["real_in"]
    assert len(data) == header["training_examples"] + header["validation_examples"]
    assert len(test) == header["test_examples"]
    assert list(data.frame.columns) == [f"x{i}" for i in range(n_in)]
    assert data.frame.dtypes.map(lambda t: t.kind == "f").all()
    assert data.class_names == test.class_names == [str(c) for c in range(header["bool_out"])]
    assert result.report.kind == "proben1" and result.report.loaded


def test_proben1_thyroid_classes_and_permutations():
    first = load_proben1("thyroid")
    assert first.data.class_names == ["0", "1", "2"] and set(first.data.labels) == {0, 1, 2}
    second = ingest(find_data_file("proben1/thyroid/thyroid2.dt"))
    assert len(second.data) == len(first.data) and second.data.fingerprint() != first.data.fingerprint()
    with pytest.raises(FileNotFoundError, match="problems there: .*'thyroid'"):
        load_proben1("no-such-problem")


def test_proben1_bad_header_and_counts(tmp_path):
    path = tmp_path / "broken.dt"
    path.write_text("bool_in=0\nreal_in=2\nbool_out=2\nreal_out=0\ntraining_examples=1\n"
                    "validation_examples=0\ntest_examples=1\n0.1 0.2 1 0\n", encoding="ascii")
    with pytest.raises(IngestError, match="promises 2 examples .* = 8 numbers, the data has 4"):
        ingest(path)
    path.write_text("real_in=2\n0.1 0.2 1 0\n", encoding="ascii")
    with pytest.raises(IngestError, match="header lacks bool_in"):
        ingest(path)
