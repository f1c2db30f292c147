"""Entity extraction: file paths, URLs, languages, frameworks, versions, errors, identifiers."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

LANGUAGES: dict[str, str] = {
    "python": "python", "py": "python", "javascript": "javascript", "js": "javascript",
    "typescript": "typescript", "ts": "typescript", "golang": "go",
    "rust": "rust", "java": "java", "kotlin": "kotlin", "c#": "csharp", "csharp": "csharp",
    "c++": "cpp", "cpp": "cpp", "ruby": "ruby", "php": "php", "swift": "swift",
    "scala": "scala", "sql": "sql", "bash": "bash", "shell": "bash", "powershell": "powershell",
    "html": "html", "css": "css", "elixir": "elixir", "haskell": "haskell", "lua": "lua",
    "dart": "dart", "perl": "perl", "clojure": "clojure", "zig": "zig",
    "objective-c": "objective-c", "solidity": "solidity", "yaml": "yaml", "hcl": "hcl",
}  # fmt: skip

FRAMEWORKS: dict[str, str] = {
    "fastapi": "fastapi", "django": "django", "flask": "flask", "react": "react",
    "vue": "vue", "angular": "angular", "svelte": "svelte", "next.js": "nextjs",
    "nextjs": "nextjs", "express.js": "express", "expressjs": "express", "nestjs": "nestjs",
    "spring boot": "spring", "rails": "rails", "laravel": "laravel", "pandas": "pandas",
    "numpy": "numpy", "pytorch": "pytorch", "tensorflow": "tensorflow",
    "scikit-learn": "scikit-learn", "sklearn": "scikit-learn", "sqlalchemy": "sqlalchemy",
    "pydantic": "pydantic", "celery": "celery", "asyncio": "asyncio", "pytest": "pytest",
    "jest": "jest", "vitest": "vitest", "junit": "junit", "mocha": "mocha",
    "cypress": "cypress", "playwright": "playwright", "selenium": "selenium",
    "tokio": "tokio", "actix": "actix", "gin": "gin", "graphql": "graphql", "grpc": "grpc",
    "kafka": "kafka", "rabbitmq": "rabbitmq", "redis": "redis", "postgres": "postgresql",
    "postgresql": "postgresql", "mysql": "mysql", "mongodb": "mongodb", "sqlite": "sqlite",
    "elasticsearch": "elasticsearch", "docker": "docker", "dockerfile": "docker",
    "docker-compose": "docker", "kubernetes": "kubernetes", "k8s": "kubernetes",
    "helm": "helm", "terraform": "terraform", "ansible": "ansible", "aws": "aws",
    "gcp": "gcp", "azure": "azure", "aws lambda": "aws-lambda", "github actions": "github-actions",
    "gitlab ci": "gitlab-ci", "jenkins": "jenkins", "nginx": "nginx", "prometheus": "prometheus",
    "grafana": "grafana", "airflow": "airflow", "spark": "spark", "dbt": "dbt",
    "matplotlib": "matplotlib", "seaborn": "seaborn", "plotly": "plotly", "tailwind": "tailwind",
    "node.js": "nodejs", "nodejs": "nodejs", "deno": "deno", "webpack": "webpack", "vite": "vite",
    "alembic": "alembic", "prisma": "prisma", "hibernate": "hibernate", "openapi": "openapi",
    "litellm": "litellm", "langchain": "langchain", "arq": "arq", "uvicorn": "uvicorn",
}  # fmt: skip

_FILE_EXT = (
    "py|pyi|js|jsx|mjs|ts|tsx|go|rs|java|kt|rb|php|c|h|cc|cpp|hpp|cs|swift|scala|sql|sh|"
    "yaml|yml|json|toml|ini|cfg|conf|env|md|rst|txt|csv|tsv|parquet|xml|html|css|scss|"
    "tf|hcl|lock|log|ipynb|proto|graphql|vue|svelte|dart|ex|exs|lua|r"
)
_URL = re.compile(r"https?://[^\s`'\"<>)]+")
_PATH = re.compile(
    rf"(?<![\w/.-])(?:~?/?(?:[\w.-]+/)+[\w.-]+|[\w-]+(?:\.[\w-]+)*\.(?:{_FILE_EXT}))(?![\w/])"
)
_SPECIAL_FILES = re.compile(r"\b(Dockerfile|Makefile|Procfile|Jenkinsfile|Gemfile|Vagrantfile)\b")
_VERSION = re.compile(r"(?<![\w.])v?\d+\.\d+(?:\.\d+)?(?:[-+][\w.]+)?(?![\w.])")
_ERROR = re.compile(
    r"\b(?:[A-Z]\w*(?:Error|Exception|Fault|Panic)|panic|Traceback|segmentation fault|"
    r"segfault|SIGSEGV|SIGKILL|OOMKilled|CrashLoopBackOff|ECONNREFUSED|ETIMEDOUT|"
    r"ENOENT|EADDRINUSE|HTTP [45]\d\d|[45]\d\d (?:error|status)|exit (?:code|status) \d+)"
    r"(?::[^\n`]{0,120})?",
    re.IGNORECASE,
)
_BACKTICK = re.compile(r"`([^`\n]{1,120})`")
# "Go" is also a verb: count it as the language only where the sentence says so.
_GO_LANGUAGE = re.compile(
    r"\b(?:in|using|with|written in|port(?:ed)? to) go\b|\bgo (?:code|service|module|program|"
    r"app|binary|routine|channel|struct|test|project|server|cli|function)s?\b",
    re.IGNORECASE,
)


def _dedupe(items: list[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(i.strip() for i in items if i.strip()))


def _lookup(text: str, table: dict[str, str]) -> tuple[str, ...]:
    found: list[str] = []
    lowered = text.lower()
    for name, canonical in table.items():
        # Word-bounded match; names such as "c++" and "next.js" carry punctuation.
        pattern = rf"(?<![\w+#.-]){re.escape(name)}(?![\w+#-])"
        if re.search(pattern, lowered):
            found.append(canonical)
    return _dedupe(found)


@dataclass(frozen=True, slots=True)
class Entities:
    file_paths: tuple[str, ...] = ()
    urls: tuple[str, ...] = ()
    languages: tuple[str, ...] = ()
    frameworks: tuple[str, ...] = ()
    versions: tuple[str, ...] = ()
    errors: tuple[str, ...] = ()
    identifiers: tuple[str, ...] = ()
    extra: dict[str, tuple[str, ...]] = field(default_factory=dict)

    @property
    def technologies(self) -> tuple[str, ...]:
        return _dedupe([*self.languages, *self.frameworks])

    def is_empty(self) -> bool:
        return not any(
            (self.file_paths, self.urls, self.languages, self.frameworks, self.errors,
             self.identifiers)
        )  # fmt: skip

    def merged_with(self, earlier: Entities) -> Entities:
        """These entities, then the earlier ones (a follow-up keeps the subject)."""
        return Entities(
            file_paths=_dedupe([*self.file_paths, *earlier.file_paths]),
            urls=_dedupe([*self.urls, *earlier.urls]),
            languages=_dedupe([*self.languages, *earlier.languages]),
            frameworks=_dedupe([*self.frameworks, *earlier.frameworks]),
            versions=_dedupe([*self.versions, *earlier.versions]),
            errors=_dedupe([*self.errors, *earlier.errors]),
            identifiers=_dedupe([*self.identifiers, *earlier.identifiers]),
        )

    def as_dict(self) -> dict[str, list[str]]:
        return {
            "file_paths": list(self.file_paths),
            "urls": list(self.urls),
            "languages": list(self.languages),
            "frameworks": list(self.frameworks),
            "versions": list(self.versions),
            "errors": list(self.errors),
            "identifiers": list(self.identifiers),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Sequence[str]]) -> Entities:
        """The inverse of ``as_dict``."""
        return cls(
            file_paths=tuple(data.get("file_paths", ())),
            urls=tuple(data.get("urls", ())),
            languages=tuple(data.get("languages", ())),
            frameworks=tuple(data.get("frameworks", ())),
            versions=tuple(data.get("versions", ())),
            errors=tuple(data.get("errors", ())),
            identifiers=tuple(data.get("identifiers", ())),
        )


def extract_entities(text: str) -> Entities:
    urls = _URL.findall(text)
    without_urls = _URL.sub(" ", text)
    paths = [p for p in _PATH.findall(without_urls) if not _VERSION.fullmatch(p)]
    paths += _SPECIAL_FILES.findall(without_urls)
    identifiers = _BACKTICK.findall(text)
    return Entities(
        file_paths=_dedupe(paths),
        urls=_dedupe(urls),
        languages=_dedupe(
            [*_lookup(without_urls, LANGUAGES), *(["go"] if _GO_LANGUAGE.search(text) else [])]
        ),
        frameworks=_lookup(without_urls, FRAMEWORKS),
        versions=_dedupe(list(_VERSION.findall(without_urls))),
        errors=_dedupe([m.group(0) for m in _ERROR.finditer(text)]),
        identifiers=_dedupe(identifiers),
    )
