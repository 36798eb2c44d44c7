"""The embedded corpus: procedurally generated music with the paper's kinds of tags (§1, §3).

Modules, in the order a clip is made: ``taxonomy`` (tags and styles as data), ``draws``
(machine-independent random numbers), ``plan`` (what each clip plays, and its tags),
``harmony`` and ``score`` (notes), ``drums`` and ``instruments`` (sounds), ``arrange`` (who
plays what), ``render`` (mix and production), ``loader`` (the Collection).
"""
from study.data.corpus.loader import (GENERATOR_VERSION, CorpusLoader, clip_plan, corpus_table, generate_clip,
                                      listen_examples, load_corpus, track_id)
from study.data.corpus.taxonomy import CATEGORY_OF, EXCLUSIVE_GROUPS, REGRESSION_TAGS, TAG_CATEGORIES, TAGS

__all__ = ["GENERATOR_VERSION", "CorpusLoader", "clip_plan", "corpus_table", "generate_clip", "listen_examples",
           "load_corpus", "track_id", "CATEGORY_OF", "EXCLUSIVE_GROUPS", "REGRESSION_TAGS", "TAG_CATEGORIES", "TAGS"]
