"""Entities and context of the deterministic analyser (accuracy lives in test_nlu_dataset)."""

from __future__ import annotations

import json

from chatsys.domain.nlu import Analysis, Intent, RuleBasedAnalyzer
from chatsys.domain.nlu.entities import extract_entities

analyzer = RuleBasedAnalyzer()


def test_entities_are_extracted() -> None:
    found = extract_entities(
        "After upgrading to Django 5.1 on Python 3.12, `manage.py migrate` in src/app/settings.py "
        "fails with ImproperlyConfiguredError: SECRET_KEY missing. See https://docs.example.org/x"
    )
    assert "src/app/settings.py" in found.file_paths
    assert found.urls == ("https://docs.example.org/x",)
    assert found.languages == ("python",)
    assert "django" in found.frameworks
    assert {"5.1", "3.12"} <= set(found.versions)
    assert found.errors[0].startswith("ImproperlyConfiguredError: SECRET_KEY missing")
    assert found.identifiers == ("manage.py migrate",)


def test_go_the_verb_is_not_go_the_language() -> None:
    assert extract_entities("let's go ahead and ship it").languages == ()
    assert extract_entities("rewrite this service in Go").languages == ("go",)


def test_a_follow_up_keeps_the_subject() -> None:
    history = ["Write a FastAPI endpoint in app/users.py that lists users from Postgres"]
    analysis = analyzer.analyze("now add tests for it", history)
    assert analysis.primary is Intent.TESTING
    assert analysis.context.follow_up
    assert analysis.context.previous_intent is Intent.CODE_GENERATION
    assert "app/users.py" in analysis.entities.file_paths
    assert "fastapi" in analysis.technologies


def test_small_talk_in_history_is_not_the_subject() -> None:
    history = ["Review my Flask login view in auth.py", "thanks!"]
    analysis = analyzer.analyze("can you also check it for SQL injection?", history)
    assert analysis.context.subject == history[0]


def test_fallbacks_with_no_cue() -> None:
    assert analyzer.analyze("Quokkas?").primary is Intent.RESEARCH_QUESTION
    assert analyzer.analyze("hmm").primary is Intent.GENERAL_CHAT


def test_confidences_rank_and_sum_to_at_most_one() -> None:
    analysis = analyzer.analyze("Why does my pytest suite crash with a KeyError in conftest.py?")
    assert analysis.primary is Intent.DEBUGGING
    shares = [analysis.confidence, *(c for _, c in analysis.secondary)]
    assert shares == sorted(shares, reverse=True)
    assert sum(shares) <= 1.0001


def test_an_analysis_comes_back_from_its_stored_form_unchanged() -> None:
    history = ["Write a FastAPI endpoint in app/users.py that lists users"]
    for analysis in (
        analyzer.analyze("hello!"),
        analyzer.analyze("fix `TypeError: x` in src/a.py, see https://example.org/b", history),
        analyzer.analyze("now add pytest tests for it", history),
    ):
        stored = json.loads(json.dumps(analysis.as_dict()))  # as Postgres gives it back
        again = Analysis.from_dict(stored)
        assert again == analysis
        assert json.dumps(again.as_dict()) == json.dumps(analysis.as_dict())
    follow_up = Analysis.from_dict(
        analyzer.analyze("now add pytest tests for it", history).as_dict()
    )
    assert follow_up.context.previous_intent is Intent.CODE_GENERATION
    assert "app/users.py" in follow_up.entities.file_paths
