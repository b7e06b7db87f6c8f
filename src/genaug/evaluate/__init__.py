"""Evaluation: does synthetic data make a classifier better? (protocol, classifiers, statistics, reports)."""
from .classifiers import IMAGE_CLASSIFIERS, TABLE_CLASSIFIERS, resolve_classifier
from .metrics import classification_metrics, mean_interval, paired_difference
from .protocol import (ALL_ARMS, BASE_ARMS, GENERATOR_ARMS, TABLE_ARMS, GeneratorSpec, Protocol, SampleVariant,
                       StoredModel, default_arms, draw_training_set, evaluate)
from .report import markdown_table, verdict_lines, write_report
from .summary import plain_arm_name, recommend, summarise

__all__ = ["evaluate", "GeneratorSpec", "SampleVariant", "Protocol", "StoredModel", "BASE_ARMS", "GENERATOR_ARMS",
           "ALL_ARMS", "TABLE_ARMS", "IMAGE_CLASSIFIERS", "TABLE_CLASSIFIERS", "resolve_classifier", "default_arms",
           "draw_training_set", "classification_metrics", "mean_interval", "paired_difference", "summarise",
           "recommend", "plain_arm_name", "markdown_table", "verdict_lines", "write_report"]
