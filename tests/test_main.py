"""The command line main job: a report and a picture, or one clear error line."""

import numpy as np
import pytest

pytest.importorskip("matplotlib")
from skconvexscore.__main__ import load_data, main  # noqa: E402


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_a_one_column_csv_with_a_header_is_fitted_and_drawn(tmp_path, capsys):
    x = np.random.default_rng(0).normal(size=60)
    data = tmp_path / "x.csv"
    data.write_text("x\n" + "\n".join(f"{v:.17g}" for v in x) + "\n")
    picture = tmp_path / "demo"
    code, out, err = _run(capsys, "--data", str(data), "--alpha", "0.5", "--samples", "0",
                          "--output", str(picture))
    assert code == 0, err
    # alpha = 0.5 is in the Gaussian regime: the score of N(mean, var), value -1/(2 var)
    assert f"{-0.5 / x.var():.6g}" in out
    assert (tmp_path / "demo.png").stat().st_size > 0 and f"{picture}.png" in out


def test_one_row_stays_one_sample(tmp_path):
    data = tmp_path / "row.csv"
    data.write_text("1,2,3\n4,5,7\n")
    assert load_data(str(data)).shape == (2, 3)
    data.write_text("1,2,3\n")
    with pytest.raises(ValueError, match="at least 2 samples"):
        load_data(str(data))


@pytest.mark.parametrize("content, message", [
    ("1\n2\nfoo\n", "data row 3, column 1"),
    ("", "at least 2 samples"),
    ("1,2\n3,nan\n", "data row 2, column 2"),
])
def test_unreadable_data_is_one_error_line(tmp_path, capsys, content, message):
    data = tmp_path / "bad.csv"
    data.write_text(content)
    code, out, err = _run(capsys, "--data", str(data), "--alpha", "0.5", "--samples", "0",
                          "--output", str(tmp_path / "p.png"))
    assert code == 1 and message in err and "Traceback" not in err and out == ""


def test_alpha_below_the_bound_names_the_bound(tmp_path, capsys):
    code, out, err = _run(capsys, "--data", "bimodal", "--alpha", "0.001", "--samples", "0",
                          "--output", str(tmp_path / "p.png"))
    assert code == 1 and "unbounded below" in err and "alpha >= 0.00333" in err


def test_bad_options_and_outputs_fail_before_fitting(tmp_path, capsys):
    for option in (["--alpha", "-1"], ["--alpha", "nan"], ["--n-patterns", "0"],
                   ["--samples", "-5"]):
        with pytest.raises(SystemExit) as exit_:
            main(option)
        assert exit_.value.code == 2
    missing = tmp_path / "nowhere" / "p.png"
    code, out, err = _run(capsys, "--data", "bimodal", "--output", str(missing))
    assert code == 1 and "does not exist" in err and out == ""
    code, out, err = _run(capsys, "--data", str(tmp_path / "absent.csv"))
    assert code == 1 and "no such file" in err
