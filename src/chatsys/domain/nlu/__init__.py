"""Natural-language understanding: which of the 12 intents a request is, and what it names."""

from chatsys.domain.nlu.analyzer import Analysis, RuleBasedAnalyzer
from chatsys.domain.nlu.entities import Entities
from chatsys.domain.nlu.intents import Intent

__all__ = ["Analysis", "Entities", "Intent", "RuleBasedAnalyzer"]
