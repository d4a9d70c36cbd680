"""Numeric flags refuse what makes no sense (negative counts, zero sizes, NaN, infinity) as a usage
error naming the flag and the valid range, before any vault is opened."""

from __future__ import annotations

import pytest

from vault.cli import build_parser

BAD = [
    ("show", "d", "--sample", "-1"),
    ("show", "d", "--sample", "0"),
    ("show", "d", "--version", "0"),
    ("import", "x.csv", "--name", "n", "--image-size", "-3"),
    ("import", "x.csv", "--name", "n", "--workers", "0"),
    ("import", "x.csv", "--name", "n", "--max-records", "0"),
    ("import", "x.csv", "--name", "n", "--max-bytes", "-1"),
    ("import", "x.csv", "--name", "n", "--max-bytes", "lots"),
    ("train", "d", "--epochs", "-1"),
    ("train", "d", "--batch-size", "0"),
    ("train", "d", "--physical-batch-size", "-8"),
    ("train", "d", "--dataset-version", "-1"),
    ("train", "d", "--seed", "-5"),
    ("train", "d", "--epsilon", "nan"),
    ("train", "d", "--epsilon", "-1"),
    ("train", "d", "--delta", "inf"),
    ("train", "d", "--lr", "0"),
    ("train", "d", "--max-grad-norm", "-0.5"),
    ("train", "d", "--val-split", "1.5"),
    ("train", "d", "--val-split", "nan"),
    ("evaluate", "m", "d", "--dataset-version", "0"),
    ("policy", "check", "train", "--epsilon=-inf"),
    ("policy", "check", "train", "--delta", "nan"),
    ("netcheck", "--timeout", "-1"),
    ("netcheck", "--timeout", "inf"),
]


@pytest.mark.parametrize("argv", BAD, ids=[" ".join(a) for a in BAD])
def test_bad_numbers_are_usage_errors_naming_the_flag(argv: tuple[str, ...], capsys) -> None:
    with pytest.raises(SystemExit) as stopped:
        build_parser().parse_args(list(argv))
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    flag = [a for a in argv if a.startswith("--")][-1].split("=")[0]
    assert f"argument {flag}:" in err and "Traceback" not in err
    assert any(word in err for word in ("at least", "between", "a number", "a whole number", "a size")), err


def test_good_numbers_still_parse() -> None:
    args = build_parser().parse_args(["show", "d", "--sample", "3", "--version", "2"])
    assert args.sample == 3 and args.version == 2
    args = build_parser().parse_args(["train", "d", "--epsilon", "0.5", "--seed", "0", "--val-split", "0.2"])
    assert args.epsilon == 0.5 and args.seed == 0 and args.val_split == 0.2
    args = build_parser().parse_args(
        ["import", "x", "--name", "n", "--max-bytes", "3GiB", "--max-records", "9"]
    )
    assert args.max_bytes == 3 * 2**30 and args.max_records == 9
    assert build_parser().parse_args(["import", "x", "--name", "n", "--max-bytes", "1500"]).max_bytes == 1500


def test_show_sample_minus_one_exits_2_as_a_real_command(cli) -> None:
    assert cli("init").code == 0
    result = cli("show", "anything", "--sample", "-1")
    assert result.code == 2, (result.code, result.err)
    assert "--sample" in result.err and "at least 1" in result.err
