"""The composition root: the one place where `Settings` become the running parts.

The daemon, the scheduler, `finsent replay` and the benchmarks get their classifier,
repository, detector, router, alerting and sender from here, so each part is built one
way only and a new setting is wired in one place.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import Engine

from monitor.alerting.routing import Router
from monitor.alerting.service import AlertService, service_for
from monitor.app.batch import BatchProcessor, matcher_for
from monitor.app.outputs import ResultsPublisher
from monitor.classify.base import Classifier
from monitor.config import Settings
from monitor.detect.runner import DetectorRunner
from monitor.notify.sender import Sender
from monitor.store.repository import KeyPolicy, Store
from monitor.store.schema import make_engine

log = logging.getLogger(__name__)


def build_classifier(settings: Settings) -> Classifier:
    """The classifier the settings name: the shipped model, a model folder, or the test double."""
    from monitor.classify.engine import build_classifier as build

    if settings.model == "test-double":
        log.warning("using the keyword test double instead of the model (FINSENT_MODEL=test-double)")
    return build(
        settings.model or None,
        device=settings.device,
        max_length=settings.max_length,
        batch_size=settings.inference_batch_size,
    )


def build_store(settings: Settings, engine: Engine) -> Store:
    keys = KeyPolicy(
        known=matcher_for(settings).known_symbols(),
        min_sightings=settings.retention.entity_min_sightings,
    )
    return Store(engine, novelty_horizon=timedelta(minutes=settings.detect.novelty_horizon_minutes), keys=keys)


def build_router(settings: Settings) -> Router:
    return Router.from_settings(settings)


def build_alerting(settings: Settings, engine: Engine, router: Router | None = None) -> AlertService:
    return service_for(engine, settings, router or build_router(settings))


@dataclass
class Parts:
    """Everything a process runs, over one database."""

    settings: Settings
    engine: Engine
    store: Store
    detector: DetectorRunner
    router: Router
    alerting: AlertService
    sender: Sender
    results: ResultsPublisher | None = None  # None: `publish_results = false`

    def processor(self, classifier: Classifier) -> BatchProcessor:
        """The batch pipeline (decode -> classify -> enrich -> store) with this store.

        Batches from Kafka (`process`) publish their stored documents to `<topic>.scored`;
        replays and benchmarks (`process_documents`, `process_classified`) publish nothing.
        """
        proc = BatchProcessor(self.settings, classifier, self.store)
        if self.results is not None:
            proc.on_stored = self.results.publish_documents
        return proc


def build(settings: Settings, engine: Engine | None = None) -> Parts:
    """The parts for `settings`, on `engine` or a new engine for `settings.database_url`."""
    engine = engine if engine is not None else make_engine(settings.database_url)
    router = build_router(settings)
    return Parts(
        settings=settings,
        engine=engine,
        store=build_store(settings, engine),
        detector=DetectorRunner(engine, settings),
        router=router,
        alerting=build_alerting(settings, engine, router),
        sender=Sender(engine, settings),
        results=ResultsPublisher(settings) if settings.publish_results else None,
    )
