"""Models that run outside the room: every registry model, exported, predicts on files in a fresh
environment holding only numpy, pillow and onnxruntime exactly as `strongroom evaluate` does on the
same records; the ONNX graph holds only the safetensors' weights; a changed byte stops predict.py.

The fresh environment is installed offline from the wheelhouse STRONGROOM_TEST_WHEELHOUSE names
(`make test` builds one in .cache/wheelhouse from requirements.lock); this test downloads nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from tests.support import REPO

CLASSES = ("circle", "cross", "stripes")
ROWS = [("ham", f"see you at {h} o'clock, ok?") for h in range(1, 13)] + [
    ("spam", f"WIN a {p} prize now, txt CLAIM to 8{p}") for p in range(100, 112)
]
HELD_OUT_ROWS = [
    ("ham", "Are we still on for lunch at noon?"),
    ("ham", "ok see you at the station at 6"),
    ("spam", "URGENT! You have WON a 1000 cash prize, txt WIN to 80088"),
    ("spam", "Free entry: claim your prize now, reply YES"),
    ("ham", "Ünïcode café — déjà vu, à bientôt"),
    ("spam", " ".join(f"word{i}" for i in range(200))),  # longer than any model's max_tokens
    ("ham", "..."),  # no word at all: all padding
]
POLICY = (REPO / "policies" / "default.toml").read_text()
POLICY = POLICY.replace(
    'allowed = ["cnn", "resnet18", "bow", "transformer"]',
    'allowed = ["scatternet", "cnn", "resnet18", "bow", "transformer"]',
)
MODELS = {"scatternet": 1, "cnn": 3, "resnet18": 3, "bow": None, "transformer": None}


def pattern(cls: int, side: int, rng: np.random.Generator) -> np.ndarray:
    """A noisy picture of a circle, a cross or stripes, 0..255, (side, side)."""
    yy, xx = np.mgrid[0:side, 0:side] / (side - 1) * 2 - 1
    if cls == 0:
        shape = np.abs(np.hypot(xx, yy) - 0.6) < 0.2
    elif cls == 1:
        shape = (np.abs(xx) < 0.2) | (np.abs(yy) < 0.2)
    else:
        shape = (np.floor((xx + 1) * 3) % 2) == 0
    picture = shape * 200.0 + rng.normal(30, 25, (side, side))
    return np.clip(picture, 0, 255).astype(np.uint8)


def write_images(folder: Path, channels: int, per_class: int, seed: int, odd: bool = False) -> list[Path]:
    """Class folders of 16x16 PNGs; with `odd`, also other sizes, a JPEG and a grey file in colour."""
    rng = np.random.default_rng(seed)
    paths = []
    for c, name in enumerate(CLASSES):
        (folder / name).mkdir(parents=True)
        for i in range(per_class):
            grey = pattern(c, 16, rng)
            if channels == 3:
                tint = rng.uniform(0.5, 1.0, 3)
                image = Image.fromarray((grey[..., None] * tint).astype(np.uint8), "RGB")
            else:
                image = Image.fromarray(grey, "L")
            path = folder / name / f"{i:03d}.png"
            image.save(path)
            paths.append(path)
        if odd:  # ingest resizes these to the common 16x16; predict.py must do exactly the same
            big = Image.fromarray(pattern(c, 32, rng), "L")
            big.convert("RGB" if channels == 3 else "L").save(folder / name / "900-large.jpg", quality=90)
            Image.fromarray(pattern(c, 23, rng), "L").convert("RGB" if channels == 3 else "L").save(
                folder / name / "901-odd.png"
            )
            if channels == 3:
                Image.fromarray(pattern(c, 16, rng), "L").save(folder / name / "902-grey.png")
    # The order ingest reads them in: class folders by name, files by name within each.
    return sorted(folder.rglob("*.*"), key=lambda p: (p.parent.name, p.name))


def write_texts(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("label\ttext\n" + "".join(f"{label}\t{text}\n" for label, text in rows), "utf-8")
    return path


def trained(v, model: str, tmp_path: Path) -> str:
    """A model trained for a few steps on a small dataset named `train`."""
    channels = MODELS[model]
    if channels is None:
        source = write_texts(tmp_path / "train.tsv", ROWS)
    else:
        write_images(tmp_path / "train", channels, 12, seed=1)
        source = tmp_path / "train"
    v.import_dataset(source, name="train", sensitivity="low")
    request = {"dataset": "train", "model": model, "dp": False, "epochs": 2, "batch_size": 8}
    return v.train({**request, "val_split": 0.25, "seed": 1})["model"]


def held_out(v, model: str, tmp_path: Path) -> tuple[list[str], list[str]]:
    """Held-out records imported as `held-out`, and the same records as predict.py's arguments,
    in the dataset's order."""
    channels = MODELS[model]
    if channels is None:
        v.import_dataset(write_texts(tmp_path / "held-out.tsv", HELD_OUT_ROWS), name="held-out")
        lines = tmp_path / "held-out.txt"
        lines.write_text("".join(f"{text}\n\n" for _, text in HELD_OUT_ROWS), "utf-8")  # blank lines skipped
        return [str(lines)], [f"{lines}:{2 * i + 1}" for i in range(len(HELD_OUT_ROWS))]
    paths = write_images(tmp_path / "held-out", channels, 3, seed=2, odd=True)
    v.import_dataset(tmp_path / "held-out", name="held-out")
    return [str(p) for p in paths], [str(p) for p in paths]


def reference_logits(v, model_id: str) -> np.ndarray:
    """The logits `evaluate` computes on the held-out dataset: its decrypted records, the model's
    prepare, its forward (vault/train/evaluate.py's own steps)."""
    from vault.train.data import prepare_all
    from vault.train.engine import predict
    from vault.train.evaluate import load_model
    from vault.train.weights import weights_from_bytes

    entry = v._training.model_entry(v._session.read_catalog(), model_id)
    weights = weights_from_bytes(v._session.get_object(entry["objects"]["model.safetensors"]))
    loaded = v._datasets.load("held-out", purpose="evaluate")
    model = load_model(weights, entry["config"])
    with torch.no_grad():
        logits, _ = predict(model, prepare_all(model, loaded.x, torch.device("cpu")))
    return logits.numpy()


def onnx_tensors(path: Path) -> dict[str, np.ndarray]:
    """Every tensor an ONNX file holds: initializers by name, constants by their node's output."""
    import onnx
    from onnx import numpy_helper

    graph = onnx.load(str(path)).graph
    tensors = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    for node in graph.node:
        for attribute in node.attribute:
            if attribute.name == "value" and attribute.type == onnx.AttributeProto.TENSOR:
                tensors[f"constant:{node.output[0]}"] = numpy_helper.to_array(attribute.t)
    return tensors


def check_onnx_holds_only_the_safetensors_weights(bundle: Path, config: dict) -> None:
    from safetensors.numpy import load_file

    from vault.train.models import build_model

    weights = load_file(str(bundle / "model.safetensors"))
    fixed = {  # buffers fixed by formula, never saved (scatternet's filters)
        name: t.numpy()
        for name, t in build_model(config).named_buffers()
        if name not in weights and t.is_floating_point()
    }
    tensors = onnx_tensors(bundle / "model.onnx")
    initializers = {k: t for k, t in tensors.items() if not k.startswith("constant:")}
    for name, tensor in initializers.items():
        assert name in weights, f"model.onnx holds {name}, which model.safetensors does not"
        assert np.array_equal(tensor, weights[name]), name
    for name, tensor in weights.items():  # the exporter keeps one copy of tensors that are equal
        assert any(t.shape == tensor.shape and np.array_equal(t, tensor) for t in initializers.values()), name
    for name, tensor in tensors.items():
        if name.startswith("constant:") and tensor.size > 64:
            assert any(np.array_equal(tensor.ravel(), f.ravel()) for f in fixed.values()), (
                f"model.onnx holds a constant of {tensor.size} values that is no fixed filter: {name}"
            )


def run_predict(python: str | Path, bundle: Path, *inputs: str, env: dict | None = None):
    return subprocess.run(
        [str(python), str(bundle / "predict.py"), "--bundle", str(bundle), *inputs],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )


@pytest.fixture(scope="module")
def runtime(tmp_path_factory) -> tuple[Path, dict[str, str]]:
    """A fresh venv holding only numpy, pillow and onnxruntime, installed offline."""
    named = os.environ.get("STRONGROOM_TEST_WHEELHOUSE")
    if not named:
        pytest.skip(
            "STRONGROOM_TEST_WHEELHOUSE names no wheelhouse to install onnxruntime from offline "
            "(`make test` builds one in .cache/wheelhouse)"
        )
    wheelhouse = Path(named)
    if not list(wheelhouse.glob("onnxruntime-*.whl")):
        pytest.skip(f"{wheelhouse} holds no onnxruntime wheel: run `make lock` and `make test` again")
    home = tmp_path_factory.mktemp("runtime")
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "PIP_CONFIG_FILE": "/dev/null"}
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(home / "venv")], check=True, env=env, timeout=300)
    python = home / "venv" / "bin" / "python"
    install = [str(python), "-m", "pip", "install", "--quiet", "--disable-pip-version-check", "--no-index"]
    done = subprocess.run(
        [*install, "--find-links", str(wheelhouse), "numpy", "pillow", "onnxruntime"],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr
    probe = "import importlib.util as u; print([m for m in ('torch', 'vault', 'onnx', 'safetensors') if u.find_spec(m)])"
    seen = subprocess.run([str(python), "-c", probe], capture_output=True, text=True, env=env, cwd=home)
    assert seen.stdout.strip() == "[]", seen.stdout + seen.stderr
    return python, env


@pytest.mark.slow
@pytest.mark.parametrize("model", list(MODELS))
def test_predict_py_outside_the_vault_predicts_as_evaluate_does(new_vault, tmp_path, runtime, model):
    python, env = runtime
    v = new_vault(policy_text=POLICY)
    model_id = trained(v, model, tmp_path)
    inputs, names = held_out(v, model, tmp_path)
    bundle = tmp_path / "bundle"
    v.export(model_id, bundle)
    config = v._training.model_entry(v._session.read_catalog(), model_id)["config"]
    check_onnx_holds_only_the_safetensors_weights(bundle, config)

    done = run_predict(python, bundle, "--json", *inputs, env={**env, "HOME": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["input"] for r in results] == names
    expected = reference_logits(v, model_id)
    got = np.array([r["logits"] for r in results])
    assert got.shape == expected.shape
    assert (got.argmax(1) == expected.argmax(1)).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-4)
    classes = json.loads((bundle / "preprocess.json").read_text())["classes"]
    assert [r["label"] for r in results] == [classes[i] for i in expected.argmax(1)]

    # `strongroom evaluate` on the same records: the same confusion matrix as predict.py's labels.
    metrics = v.evaluate(model_id, "held-out")
    if MODELS[model]:
        truth_rows = [classes.index(Path(n).parent.name) for n in names]
    else:
        truth_rows = [classes.index(label) for label, _ in HELD_OUT_ROWS]
    confusion = np.zeros((len(classes), len(classes)), dtype=int)
    for actual, result in zip(truth_rows, results, strict=True):
        confusion[actual, classes.index(result["label"])] += 1
    assert confusion.tolist() == metrics["confusion"]

    plain = run_predict(python, bundle, *inputs, env={**env, "HOME": str(tmp_path)})
    assert plain.returncode == 0, plain.stderr
    assert not (tmp_path / ".cache" / "Microsoft").exists(), (
        "onnxruntime's telemetry queued events about the host"
    )
    first = plain.stdout.splitlines()[0].split("\t")
    assert first[:2] == [names[0], results[0]["label"]]
    assert abs(float(first[2]) - results[0]["probability"]) < 1e-4


def test_the_bundle_holds_the_portable_model_and_a_changed_byte_stops_predict_py(new_vault, tmp_path):
    v = new_vault(policy_text=POLICY)
    model_id = trained(v, "bow", tmp_path)
    bundle = tmp_path / "bundle"
    result = v.export(model_id, bundle)
    portable = {"model.onnx", "preprocess.json", "predict.py"}
    assert portable <= set(result["files"])
    lines = (bundle / "MANIFEST.sha256").read_text().splitlines()
    assert {line.split("  ")[1] for line in lines} == portable | {
        "model.safetensors",
        "card.json",
        "card.md",
        "export.json",
    }
    assert portable <= set(json.loads((bundle / "export.json").read_text())["files"])
    assert v.audit.entries(action="model.export")[-1]["detail"]["files"] == sorted(result["files"])
    card = json.loads((bundle / "card.json").read_text())
    assert card["onnx"]["opset"] == 17 and "ONNX opset 17" in (bundle / "card.md").read_text()
    config = v._training.model_entry(v._session.read_catalog(), model_id)["config"]
    preprocess = json.loads((bundle / "preprocess.json").read_text())
    tokenizer = preprocess["text"]["tokenizer"]
    assert {k: tokenizer[k] for k in config["tokenizer"]} == config["tokenizer"]
    assert preprocess["classes"] == ["ham", "spam"] and preprocess["input"]["name"] == "ids"
    check_onnx_holds_only_the_safetensors_weights(bundle, config)
    texts = tmp_path / "texts.txt"
    texts.write_text("WIN a prize now\nsee you at 5\n", "utf-8")

    for name in ("model.onnx", "preprocess.json", "model.safetensors"):
        copy = tmp_path / f"changed-{name}"
        copy.mkdir()
        for f in bundle.iterdir():
            (copy / f.name).write_bytes(f.read_bytes())
        data = bytearray((copy / name).read_bytes())
        data[len(data) // 2] ^= 0x01
        (copy / name).write_bytes(bytes(data))
        refused = run_predict(sys.executable, copy, str(texts))
        assert refused.returncode == 3, refused.stderr
        assert f"{name} does not match MANIFEST.sha256" in refused.stderr and refused.stdout == ""
        assert "Traceback" not in refused.stderr

    pytest.importorskip("onnxruntime", reason="onnxruntime (the dev extra) runs the whole bundle here")
    home = tmp_path / "home"
    home.mkdir()
    done = run_predict(sys.executable, bundle, "--json", str(texts), env={**os.environ, "HOME": str(home)})
    assert done.returncode == 0, done.stderr
    # onnxruntime's own telemetry (events about the host, queued on disk for upload) stays off
    assert not any(home.rglob("*")), sorted(str(p.relative_to(home)) for p in home.rglob("*"))
    results = [json.loads(line) for line in done.stdout.splitlines()]
    assert [r["input"] for r in results] == [f"{texts}:1", f"{texts}:2"]
    by_argument = run_predict(sys.executable, bundle, "--json", "--text", "WIN a prize now")
    alone = json.loads(by_argument.stdout)
    # the same text alone or in a batch of two: the same label, logits equal up to float32 rounding
    # (ONNX Runtime's kernels may add in another order for another batch size)
    assert alone["label"] == results[0]["label"]
    assert max(abs(a - b) for a, b in zip(alone["logits"], results[0]["logits"], strict=True)) < 1e-5
