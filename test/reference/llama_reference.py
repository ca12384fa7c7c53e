"""Independent PyTorch reference of a Llama-family causal LM with PEFT-style LoRA, used to check the engine's numerics.

Follows Hugging Face transformers' eager implementation (model_type llama, mistral, qwen2, qwen3) and PEFT's LoRA
layer, written from their definitions so it needs neither package: only torch and numpy (Debian's torch 1.13 works).

Legend: B = batch, T = sequence, C = hidden_size, I = intermediate_size, H = query heads, K = key/value heads,
D = head_dim, V = vocab_size, r = LoRA rank.

Precision: build the model with dtype=torch.float64 for golden values; torch.float32 mirrors transformers in fp32.
RMSNorm and softmax upcast to fp32 as transformers does (never downcast a float64 model). RoPE inverse frequencies are
rounded to fp32 and the angles t * inv_freq are formed in fp32, as transformers keeps them; cos/sin are then taken in
the model's dtype.
"""
from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass
from typing import Dict, Iterable, List, Optional

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

IGNORE_INDEX = -100
ATTENTION_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj")
MLP_TARGETS = ("gate_proj", "up_proj", "down_proj")
ALL_TARGETS = ATTENTION_TARGETS + MLP_TARGETS
# PEFT saves adapter tensors under the PeftModel's module path, without the adapter name.
PEFT_PREFIX = "base_model.model."


# ---------------------------------------------------------------------------------------------------------------------
# safetensors: 8-byte little-endian header length N, N bytes of JSON header, then the raw little-endian tensor bytes.

_NUMPY_DTYPES = {"F64": np.float64, "F32": np.float32, "F16": np.float16, "I64": np.int64, "I32": np.int32}


def read_safetensors(path: str) -> Dict[str, torch.Tensor]:
    """Reads every tensor of a .safetensors file; floating tensors come back as fp32 (BF16/F16 exactly widened)."""
    with open(path, "rb") as f:
        blob = f.read()
    (header_len,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8 : 8 + header_len].decode("utf-8"))
    data = memoryview(blob)[8 + header_len :]
    tensors: Dict[str, torch.Tensor] = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        start, end = info["data_offsets"]
        raw = data[start:end]
        shape = info["shape"]
        if info["dtype"] == "BF16":
            # bf16 is the top half of an fp32: widen by shifting the 16 bits into the high half.
            bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
            array = bits.view(np.float32)
        elif info["dtype"] in _NUMPY_DTYPES:
            array = np.frombuffer(raw, dtype=np.dtype(_NUMPY_DTYPES[info["dtype"]]).newbyteorder("<"))
            if array.dtype.kind == "f":
                array = array.astype(np.float32)
        else:
            raise ValueError(f"{path}: tensor {name!r} has dtype {info['dtype']}; supported: BF16, {', '.join(_NUMPY_DTYPES)}")
        expected = int(np.prod(shape)) if shape else 1
        if array.size != expected:
            raise ValueError(f"{path}: tensor {name!r} holds {array.size} values, shape {shape} needs {expected}")
        tensors[name] = torch.from_numpy(array.reshape(shape).copy())
    return tensors


def _bf16_bits(t: torch.Tensor) -> np.ndarray:
    """Round-to-nearest-even fp32 -> bf16 (torch's conversion), returned as the raw uint16 bit patterns."""
    return t.detach().to(torch.float32).to(torch.bfloat16).view(torch.int16).numpy().view(np.uint16)


def write_safetensors(path: str, tensors: Dict[str, torch.Tensor], dtype: str = "F32",
                      metadata: Optional[Dict[str, str]] = None) -> None:
    """Writes tensors as F32 (or BF16), keys sorted, data offsets contiguous in key order, header padded to 8 bytes."""
    header: Dict[str, object] = {}
    if metadata:
        header["__metadata__"] = metadata
    chunks: List[bytes] = []
    offset = 0
    for name in sorted(tensors):
        t = tensors[name].detach().cpu()
        if dtype == "F32":
            raw = t.to(torch.float32).contiguous().numpy().astype("<f4").tobytes()
        elif dtype == "BF16":
            raw = _bf16_bits(t.contiguous()).astype("<u2").tobytes()
        else:
            raise ValueError(f"write_safetensors: dtype {dtype} not supported (F32, BF16)")
        header[name] = {"dtype": dtype, "shape": list(t.shape), "data_offsets": [offset, offset + len(raw)]}
        chunks.append(raw)
        offset += len(raw)
    header_bytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    header_bytes += b" " * (-len(header_bytes) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header_bytes)))
        f.write(header_bytes)
        for raw in chunks:
            f.write(raw)


# ---------------------------------------------------------------------------------------------------------------------
# Configuration


@dataclass
class ModelConfig:
    model_type: str
    hidden_size: int  # C
    intermediate_size: int  # I
    num_hidden_layers: int
    num_attention_heads: int  # H
    num_key_value_heads: int  # K; K < H is grouped-query attention
    head_dim: int  # D; config "head_dim" when given, else C / H
    vocab_size: int  # V
    rms_norm_eps: float
    rope_theta: float
    max_position_embeddings: int
    tie_word_embeddings: bool
    rope_scaling: Optional[dict]
    qkv_bias: bool  # q/k/v projections carry a bias (qwen2 always; llama/qwen3 when attention_bias)
    o_bias: bool  # o_proj carries a bias (llama/qwen3 when attention_bias)
    qk_norm: bool  # qwen3: RMSNorm over D on every query and key head before RoPE

    @staticmethod
    def from_dict(cfg: dict) -> "ModelConfig":
        model_type = cfg["model_type"]
        if model_type not in ("llama", "mistral", "qwen2", "qwen3"):
            raise ValueError(f"config.json: model_type {model_type!r} not supported (llama, mistral, qwen2, qwen3)")
        heads = cfg["num_attention_heads"]
        attention_bias = bool(cfg.get("attention_bias", False)) and model_type in ("llama", "qwen3")
        return ModelConfig(
            model_type=model_type,
            hidden_size=cfg["hidden_size"],
            intermediate_size=cfg["intermediate_size"],
            num_hidden_layers=cfg["num_hidden_layers"],
            num_attention_heads=heads,
            num_key_value_heads=cfg.get("num_key_value_heads") or heads,
            head_dim=cfg.get("head_dim") or cfg["hidden_size"] // heads,
            vocab_size=cfg["vocab_size"],
            rms_norm_eps=cfg.get("rms_norm_eps", 1e-6),
            rope_theta=cfg.get("rope_theta", 10000.0),
            max_position_embeddings=cfg.get("max_position_embeddings", 2048),
            tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
            rope_scaling=cfg.get("rope_scaling"),
            # transformers' Qwen2Attention hard-codes bias=True on q/k/v (and never on o_proj); Mistral has no biases.
            qkv_bias=model_type == "qwen2" or attention_bias,
            o_bias=attention_bias,
            qk_norm=model_type == "qwen3",
        )


def rope_inverse_frequencies(cfg: ModelConfig) -> torch.Tensor:
    """inv_freq [D/2] as transformers' default and "llama3" rope initialisers compute it (in float64, then fp32)."""
    d = cfg.head_dim
    inv = 1.0 / (cfg.rope_theta ** (torch.arange(0, d, 2, dtype=torch.float64) / d))
    scaling = cfg.rope_scaling or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old_context = scaling["original_max_position_embeddings"]
        low_freq_wavelen = old_context / low
        high_freq_wavelen = old_context / high
        wavelen = 2 * math.pi / inv
        # Long wavelengths are slowed by `factor`; short ones kept; the band between is interpolated.
        scaled = torch.where(wavelen > low_freq_wavelen, inv / factor, inv)
        smooth = (old_context / wavelen - low) / (high - low)
        smoothed = (1 - smooth) * scaled / factor + smooth * scaled
        is_medium = ~(wavelen < high_freq_wavelen) & ~(wavelen > low_freq_wavelen)
        inv = torch.where(is_medium, smoothed, scaled)
    elif kind != "default":
        raise ValueError(f"config.json: rope_scaling type {kind!r} not supported (llama3, default)")
    return inv.to(torch.float32)


def rope_cos_sin(cfg: ModelConfig, seq_len: int, dtype: torch.dtype):
    """cos, sin [T, D] for positions 0..T-1, with the two halves duplicated (rotate_half convention)."""
    inv = rope_inverse_frequencies(cfg)  # (D/2,) fp32
    positions = torch.arange(seq_len, dtype=torch.float32)
    angles = torch.outer(positions, inv)  # (T, D/2) fp32, as transformers forms them
    emb = torch.cat([angles, angles], dim=-1).to(dtype)  # (T, D)
    return emb.cos(), emb.sin()


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def repeat_kv(x: torch.Tensor, groups: int) -> torch.Tensor:
    """(B, K, T, D) -> (B, K*groups, T, D): key/value head k serves query heads k*groups .. k*groups+groups-1."""
    if groups == 1:
        return x
    b, k, t, d = x.shape
    return x[:, :, None, :, :].expand(b, k, groups, t, d).reshape(b, k * groups, t, d)


# ---------------------------------------------------------------------------------------------------------------------
# Modules (attribute names mirror transformers, so state_dict keys are the checkpoint's weight names)


class RMSNorm(nn.Module):
    def __init__(self, size: int, eps: float):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # transformers: normalise in fp32 (here: at least fp32), cast back, then scale by the weight.
        wide = x.to(torch.float64 if x.dtype == torch.float64 else torch.float32)
        normed = wide * torch.rsqrt(wide.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * normed.to(x.dtype)


class LoraLinear(nn.Module):
    """y = x W^T (+ b) + scale * B(A(dropout(x))), as PEFT's lora.Linear; W [out, in], A [r, in], B [out, r]."""

    def __init__(self, in_features: int, out_features: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.empty(out_features, in_features))
        self.bias = nn.Parameter(torch.zeros(out_features)) if bias else None
        self.lora_A: Optional[nn.Linear] = None
        self.lora_B: Optional[nn.Linear] = None
        self.lora_dropout: nn.Module = nn.Identity()
        self.scale = 0.0

    def add_lora(self, r: int, alpha: float, use_rslora: bool, dropout: float) -> None:
        out_features, in_features = self.weight.shape
        self.lora_A = nn.Linear(in_features, r, bias=False).to(self.weight.dtype)
        self.lora_B = nn.Linear(r, out_features, bias=False).to(self.weight.dtype)
        self.lora_dropout = nn.Dropout(dropout) if dropout > 0 else nn.Identity()
        self.scale = alpha / math.sqrt(r) if use_rslora else alpha / r

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.linear(x, self.weight, self.bias)
        if self.lora_A is not None:
            y = y + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scale
        return y


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        c, h, k, d = cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.cfg = cfg
        self.q_proj = LoraLinear(c, h * d, cfg.qkv_bias)
        self.k_proj = LoraLinear(c, k * d, cfg.qkv_bias)
        self.v_proj = LoraLinear(c, k * d, cfg.qkv_bias)
        self.o_proj = LoraLinear(h * d, c, cfg.o_bias)
        if cfg.qk_norm:
            self.q_norm = RMSNorm(d, cfg.rms_norm_eps)
            self.k_norm = RMSNorm(d, cfg.rms_norm_eps)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        cfg = self.cfg
        b, t, _ = x.shape
        h, k, d = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        q = self.q_proj(x).view(b, t, h, d)  # (B, T, H, D)
        kk = self.k_proj(x).view(b, t, k, d)  # (B, T, K, D)
        v = self.v_proj(x).view(b, t, k, d).transpose(1, 2)  # (B, K, T, D)
        if cfg.qk_norm:
            q, kk = self.q_norm(q), self.k_norm(kk)
        q, kk = q.transpose(1, 2), kk.transpose(1, 2)  # (B, H, T, D), (B, K, T, D)
        q = q * cos + rotate_half(q) * sin
        kk = kk * cos + rotate_half(kk) * sin
        kk, v = repeat_kv(kk, h // k), repeat_kv(v, h // k)  # (B, H, T, D)
        scores = (q @ kk.transpose(-1, -2)) * d**-0.5  # (B, H, T, T)
        future = torch.ones(t, t, dtype=torch.bool, device=x.device).triu(1)
        scores = scores.masked_fill(future, float("-inf"))
        softmax_dtype = torch.float64 if scores.dtype == torch.float64 else torch.float32
        probs = F.softmax(scores, dim=-1, dtype=softmax_dtype).to(q.dtype)
        out = (probs @ v).transpose(1, 2).reshape(b, t, h * d)  # (B, T, H*D)
        return self.o_proj(out)


class Mlp(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.gate_proj = LoraLinear(cfg.hidden_size, cfg.intermediate_size, False)
        self.up_proj = LoraLinear(cfg.hidden_size, cfg.intermediate_size, False)
        self.down_proj = LoraLinear(cfg.intermediate_size, cfg.hidden_size, False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class DecoderLayer(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.self_attn = Attention(cfg)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.mlp = Mlp(cfg)

    def forward(self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
        x = x + self.self_attn(self.input_layernorm(x), cos, sin)
        return x + self.mlp(self.post_attention_layernorm(x))


class Decoder(nn.Module):
    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.embed_tokens = nn.Embedding(cfg.vocab_size, cfg.hidden_size)
        self.layers = nn.ModuleList([DecoderLayer(cfg) for _ in range(cfg.num_hidden_layers)])
        self.norm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)


class CausalLM(nn.Module):
    """Decoder-only causal LM. Positions are 0..T-1 on every row and the mask is causal only: right padding is
    harmless because no real token attends to a later position, and padded positions carry label -100."""

    def __init__(self, cfg: ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.model = Decoder(cfg)
        if not cfg.tie_word_embeddings:
            self.lm_head = nn.Linear(cfg.hidden_size, cfg.vocab_size, bias=False)
        # Optional per-layer wrapper, e.g. gradient checkpointing: checkpoint(layer_fn, layer, x, cos, sin).
        self.layer_runner = None

    def head_weight(self) -> torch.Tensor:
        return self.model.embed_tokens.weight if self.cfg.tie_word_embeddings else self.lm_head.weight

    def forward(self, input_ids: torch.Tensor, hidden_states: Optional[List[torch.Tensor]] = None) -> torch.Tensor:
        """input_ids (B, T) -> logits (B, T, V). Appends the embedding and each layer's output to hidden_states."""
        x = self.model.embed_tokens(input_ids)  # (B, T, C)
        cos, sin = rope_cos_sin(self.cfg, input_ids.shape[1], x.dtype)
        if hidden_states is not None:
            hidden_states.append(x)
        for layer in self.model.layers:
            x = self.layer_runner(layer, x, cos, sin) if self.layer_runner else layer(x, cos, sin)
            if hidden_states is not None:
                hidden_states.append(x)
        return F.linear(self.model.norm(x), self.head_weight())  # (B, T, V)


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """transformers' causal LM loss: mean cross-entropy of logits[:, :-1] against labels[:, 1:] over labels != -100."""
    if logits.dtype != torch.float64:
        logits = logits.float()
    v = logits.shape[-1]
    return F.cross_entropy(logits[:, :-1].reshape(-1, v), labels[:, 1:].reshape(-1), ignore_index=IGNORE_INDEX)


# ---------------------------------------------------------------------------------------------------------------------
# Loading, LoRA attachment, PEFT adapter files


def load_model(model_dir: str, dtype: torch.dtype = torch.float32) -> CausalLM:
    """Reads config.json + model.safetensors from a Hugging Face model folder; checks every name and shape."""
    with open(os.path.join(model_dir, "config.json")) as f:
        cfg = ModelConfig.from_dict(json.load(f))
    weights = read_safetensors(os.path.join(model_dir, "model.safetensors"))
    model = CausalLM(cfg)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(weights))
    unexpected = sorted(set(weights) - set(expected))
    if missing or unexpected:
        raise ValueError(f"{model_dir}/model.safetensors: missing {missing}, unexpected {unexpected}")
    for name, tensor in weights.items():
        if tuple(tensor.shape) != tuple(expected[name].shape):
            raise ValueError(f"{model_dir}/model.safetensors: {name} has shape {list(tensor.shape)}, "
                             f"expected {list(expected[name].shape)}")
    model.load_state_dict(weights)
    model.to(dtype)
    model.requires_grad_(False)
    return model


def lora_modules(model: CausalLM, targets: Iterable[str]) -> Dict[str, LoraLinear]:
    """Module path (e.g. model.layers.0.self_attn.q_proj) -> module, for each targeted projection."""
    wanted = set(targets)
    unknown = wanted - set(ALL_TARGETS)
    if unknown:
        raise ValueError(f"adapter_config.json: target_modules {sorted(unknown)} not supported ({', '.join(ALL_TARGETS)})")
    return {name: m for name, m in model.named_modules() if isinstance(m, LoraLinear) and name.rsplit(".", 1)[-1] in wanted}


def attach_lora(model: CausalLM, adapter_config: dict) -> None:
    """Adds trainable A, B to every target module; the base stays frozen. A, B are left uninitialised."""
    if adapter_config.get("peft_type", "LORA") != "LORA":
        raise ValueError(f"adapter_config.json: peft_type {adapter_config['peft_type']!r} is not LORA")
    for module in lora_modules(model, adapter_config["target_modules"]).values():
        module.add_lora(adapter_config["r"], adapter_config["lora_alpha"], bool(adapter_config.get("use_rslora", False)),
                        float(adapter_config.get("lora_dropout", 0.0)))


def lora_parameters(model: CausalLM) -> Dict[str, nn.Parameter]:
    """PEFT key (base_model.model.<path>.lora_A.weight) -> parameter, sorted by key."""
    params = {PEFT_PREFIX + name: p for name, p in model.named_parameters() if ".lora_A." in name or ".lora_B." in name}
    return dict(sorted(params.items()))


def load_adapter(model: CausalLM, adapter_dir: str) -> dict:
    """Attaches LoRA per adapter_config.json and loads adapter_model.safetensors; returns the adapter config."""
    with open(os.path.join(adapter_dir, "adapter_config.json")) as f:
        adapter_config = json.load(f)
    attach_lora(model, adapter_config)
    tensors = read_safetensors(os.path.join(adapter_dir, "adapter_model.safetensors"))
    params = lora_parameters(model)
    if set(tensors) != set(params):
        raise ValueError(f"{adapter_dir}/adapter_model.safetensors: missing {sorted(set(params) - set(tensors))}, "
                         f"unexpected {sorted(set(tensors) - set(params))}")
    with torch.no_grad():
        for key, p in params.items():
            if tuple(tensors[key].shape) != tuple(p.shape):
                raise ValueError(f"{adapter_dir}: {key} has shape {list(tensors[key].shape)}, expected {list(p.shape)}")
            p.copy_(tensors[key])
    return adapter_config


def add_model_shape_args(p) -> None:
    """The benchmarks' model-shape flags; defaults are SmolLM2-135M's shape."""
    p.add_argument("--hidden", type=int, default=576)
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--heads", type=int, default=9)
    p.add_argument("--kv-heads", type=int, default=3)
    p.add_argument("--intermediate", type=int, default=1536)
    p.add_argument("--vocab", type=int, default=49152)
    p.add_argument("--tie-word-embeddings", choices=["on", "off"], default="on")
    p.add_argument("--rope-theta", type=float, default=100000.0)


def random_model(args) -> CausalLM:
    """A frozen llama of the shape add_model_shape_args parsed: N(0, 0.02) weights, norm gains 1."""
    cfg = ModelConfig.from_dict(dict(
        model_type="llama", hidden_size=args.hidden, intermediate_size=args.intermediate,
        num_hidden_layers=args.layers, num_attention_heads=args.heads, num_key_value_heads=args.kv_heads,
        vocab_size=args.vocab, rms_norm_eps=1e-5, rope_theta=args.rope_theta, max_position_embeddings=8192,
        tie_word_embeddings=args.tie_word_embeddings == "on"))
    model = CausalLM(cfg)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.fill_(1.0)
            else:
                p.normal_(0.0, 0.02)
    model.requires_grad_(False)
    return model
