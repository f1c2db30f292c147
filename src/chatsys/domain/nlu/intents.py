"""The 12 intents and the weighted cues that point at each.

A cue is a regular expression (matched case-insensitively on word boundaries)
and a weight. The analyser adds the weights of the cues a request matches;
strong cues (an unmistakable verb phrase) weigh 3, ordinary ones 2, hints 1.
The table is data: plugins and tests can read it, and tuning it never touches
the scoring code.
"""

from __future__ import annotations

import re
from enum import StrEnum


class Intent(StrEnum):
    CODE_GENERATION = "code_generation"
    CODE_REVIEW = "code_review"
    DEBUGGING = "debugging"
    REFACTORING = "refactoring"
    TESTING = "testing"
    ARCHITECTURE_DESIGN = "architecture_design"
    DOCUMENTATION = "documentation"
    DEVOPS_DEPLOYMENT = "devops_deployment"
    DATA_ANALYSIS = "data_analysis"
    RESEARCH_QUESTION = "research_question"
    FILE_OPERATION = "file_operation"
    GENERAL_CHAT = "general_chat"


Cue = tuple[re.Pattern[str], float]


def _cues(*pairs: tuple[str, float]) -> tuple[Cue, ...]:
    return tuple((re.compile(rf"\b(?:{p})\b", re.IGNORECASE), w) for p, w in pairs)


CUES: dict[Intent, tuple[Cue, ...]] = {
    Intent.CODE_GENERATION: _cues(
        (
            r"(?:write|create|build|implement|generate|make|code|develop|scaffold|add)"
            r"(?: me)?(?: a| an| the| some| new)? (?:\w+ ){0,3}(?:function|class|script|endpoint|"
            r"api|cli|component|module|service|program|app|application|feature|handler|parser|"
            r"hook|method|decorator|middleware|bot|tool|page|form|route|query|migration|library|"
            r"wrapper|client|server|worker|job|command|utility|helper|plugin|extension|game|"
            r"generator|validator|converter|scraper|crawler|model|schema|struct|interface|widget)",
            3.0,
        ),
        (r"implement|scaffold|boilerplate|snippet|code (?:for|that|to)|write code", 2.0),
        (
            r"add (?:support for|a new|an option|pagination|authentication|login|caching|"
            r"retry|rate limiting|dark mode|search|sorting|filtering|an endpoint)",
            2.5,
        ),
        (r"(?:can|could) you (?:write|create|build|make|implement)", 2.0),
        (r"i need (?:a|an) (?:\w+ ){0,2}(?:function|script|endpoint|class|tool|program)", 2.5),
        (r"new feature|from scratch", 1.0),
        (r"generate|create|build|write", 0.5),
    ),
    Intent.CODE_REVIEW: _cues(
        (r"review|code review|pull request|pr #?\d+|merge request|diff", 3.0),
        (
            r"(?:look|glance) over|critique|audit (?:this|my) code|second pair of eyes|"
            r"any (?:issues|problems|concerns|red flags) (?:with|in)|is this (?:code )?"
            r"(?:ok|okay|good|idiomatic|correct|safe|secure|clean|readable|pythonic|thread.safe)|"
            r"what(?:'s| is) wrong with (?:this|my) (?:code|approach|implementation)|"
            r"feedback on|(?:best|good) practices?|smells?|nitpicks?|lgtm|approve",
            2.5,
        ),
        (
            r"security (?:issues|holes|problems|flaws)|vulnerab|injection|anti.?patterns?|"
            r"would you (?:merge|approve|accept)|how (?:can|could) (?:i|this) (?:be )?improve|"
            r"readab|maintainab|race conditions?",
            1.5,
        ),
    ),
    Intent.DEBUGGING: _cues(
        (
            r"debug|bug|crash(?:es|ed|ing)?|broken|fails?|failing|failed|error|exception|"
            r"traceback|stack ?trace|segfault|panic|doesn'?t work|does not work|not working|"
            r"stopped working|won'?t (?:start|compile|build|run|load|connect)|can'?t (?:connect|"
            r"import|find|start|compile)|hangs?|hanging|freezes?|stuck|deadlock|memory leak|"
            r"leaks?|throws?|thrown|undefined is not|null pointer|nullpointer|npe|wrong (?:result|"
            r"output|value|answer)s?|unexpected(?:ly)?|returns? (?:none|null|nan|undefined|empty|"
            r"duplicates?|the wrong)|flaky|intermittent(?:ly)?|regression|off.by.one|"
            r"keeps? (?:restarting|crashing|failing|returning)|timeout|times out|timed out",
            2.5,
        ),
        (
            r"why (?:does|is|do|are|did|would|won'?t|can'?t|isn'?t|doesn'?t)|fix (?:this|the|my|"
            r"it)|what'?s (?:going on|happening)|figure out why|root cause|troubleshoot|"
            r"investigate|diagnos",
            2.0,
        ),
        (r"fix|issue|problem|weird|strange|instead of|should(?:n'?t)? be", 1.0),
    ),
    Intent.REFACTORING: _cues(
        (
            r"refactor(?:ing)?|restructure|clean(?: it)? up|cleanup|tidy|simplify|"
            r"decouple|modularize|modernize|rewrite .* (?:using|with|as|in)|"
            r"extract .{0,60}?(?:into|to) .{0,30}?(?:function|method|class|module|"
            r"helper|component|hook|service)|split .{0,60}?into|"
            r"break .{0,40}?(?:up|into)|"
            r"dedupe|deduplicate|duplicated (?:code|logic)|dry (?:it|this) up|rename|"
            r"convert (?:\w+ ){0,3}(?:to|into) (?:async|dataclass|typescript|hooks|f-strings|"
            r"a class|functions|pathlib|type hints)|migrate (?:\w+ ){0,3}(?:from|to) ",
            3.0,
        ),
        (
            r"without changing (?:the )?behaviou?r|same behaviou?r|more readable|readability|"
            r"reduce (?:complexity|nesting|duplication|coupling)|god (?:class|object|function)|"
            r"too (?:long|big|complex|nested)|spaghetti|legacy|technical debt|tech debt|"
            r"move (?:\w+ ){0,3}(?:logic|code|function|method|class) (?:into|to|out)|"
            r"replace (?:\w+ ){0,4}with|inline|type hints|idiomatic",
            2.0,
        ),
        (r"improve (?:the )?(?:structure|design|code)|reorganize|consolidate", 1.5),
    ),
    Intent.TESTING: _cues(
        (
            r"(?:write|add|create|generate|need|missing|more|improve)(?: \w+){0,3} "
            r"(?:unit |integration |e2e |end.to.end |regression |property.based |snapshot |load )?"
            r"tests?|test (?:cases?|suite|plan|coverage|harness|fixtures?)|unit tests?|"
            r"integration tests?|e2e tests?|end.to.end tests?|coverage|pytest|jest|vitest|junit|"
            r"mocha|hypothesis|tdd|mock(?:s|ing)?|fixtures?|assertions?|property.based",
            3.0,
        ),
        (
            r"tests?|testing|testable|qa|edge cases|cypress|playwright|selenium|load test|"
            r"smoke test|fuzz",
            2.0,
        ),
    ),
    Intent.ARCHITECTURE_DESIGN: _cues(
        (
            r"architect(?:ure)?|design (?:a|an|the|our|my)(?: \w+){0,3} (?:system|service|"
            r"schema|database|api|platform|pipeline|backend|architecture|data model)|system design|"
            r"microservices?|monolith|service boundar|bounded contexts?|event.driven|"
            r"event sourcing|cqrs|data model|database schema|er diagram|domain model|"
            r"high.level design|scal(?:e|able|ability) to|multi.tenant|sharding|hexagonal|"
            r"ddd|message (?:bus|broker|queue) (?:between|for)|how should (?:i|we) structure",
            3.0,
        ),
        (
            r"design|schema|trade.?offs?|components?|layers?|boundar(?:y|ies)|should (?:we|i) "
            r"(?:use|split|go with)|high availability|throughput|latency budget|blueprint|"
            r"diagram|topology|caching (?:layer|strategy)|consistency",
            1.5,
        ),
    ),
    Intent.DOCUMENTATION: _cues(
        (
            r"document(?:ation)?|docstrings?|readme|jsdoc|javadoc|sphinx|mkdocs|"
            r"changelog|release notes|api (?:docs|reference)|user guide|how.to guide|"
            r"comments? (?:to|for|explaining)|write (?:up )?(?:a )?(?:guide|tutorial|wiki|runbook|"
            r"onboarding|contributing)|contributing\.md|adr|architecture decision record",
            3.0,
        ),
        (
            r"explain (?:in|for) the (?:docs|readme)|describe (?:how|what) .* (?:for|in) (?:the )?"
            r"(?:docs|team|users)|annotate|usage examples?|docs|wiki|guide|tutorial|"
            r"comment(?:s|ing)?",
            1.5,
        ),
    ),
    Intent.DEVOPS_DEPLOYMENT: _cues(
        (
            r"deploy(?:ment|ing|ed)?|ci/?cd|pipeline|github actions|gitlab ci|jenkins|"
            r"circleci|dockerfile|docker.compose|containeri[sz]e|kubernetes|k8s|helm|"
            r"terraform|ansible|pulumi|cloudformation|provision|infrastructure|iac|"
            r"rollout|rollback|blue.green|canary|autoscal|load balancer|ingress|nginx|"
            r"systemd|monitoring|alerting|prometheus|grafana|datadog|observability|"
            r"ssl cert|tls cert|dns|cdn|ec2|s3 bucket|aws lambda|ecs|eks|gke|aks|fargate|heroku|"
            r"release process",
            3.0,
        ),
        (r"certificates?|cron ?job|staging|production server", 1.0),
        (
            r"docker|container|image|build (?:step|pipeline)|workflow|runner|devops|"
            r"host(?:ing)?|cluster|pods?|logs? (?:shipping|aggregation)|uptime|sre",
            1.5,
        ),
    ),
    Intent.DATA_ANALYSIS: _cues(
        (
            r"analy[sz]e (?:the |this |our |my )?(?:\w+ ){0,2}(?:data|dataset|csv|logs|metrics|"
            r"numbers|results|sales|traffic|usage|survey|responses|spreadsheet)|data analysis|"
            r"dataset|csv|spreadsheet|excel|pandas|dataframe|plot|chart|graph (?:of|showing)|"
            r"histogram|visuali[sz]e|dashboard|metrics|kpis?|statistic(?:s|al)|correlation|"
            r"regression analysis|trend|average|median|mean|percentiles?|distribution|"
            r"cohort|retention|churn|conversion rate|a/b test|aggregate|group by|pivot|"
            r"outliers?|forecast",
            3.0,
        ),
        (
            r"data|numbers|rows|columns|per (?:day|week|month|user|region)|how many|totals?|"
            r"breakdown|summary statistics|insights?|jupyter|notebook|sql query (?:to|that) "
            r"(?:count|sum|find)",
            1.5,
        ),
    ),
    Intent.RESEARCH_QUESTION: _cues(
        (
            r"what (?:is|are|was|were|does|do)|what'?s the difference|difference between|"
            r"compare|comparison|vs\.?|versus|pros and cons|explain|how does|how do|why (?:is|are|"
            r"do|does|should|would) (?:people|we|you|it generally)|when should|which (?:is|one) "
            r"(?:better|faster|best)|is it (?:true|possible|worth)|tell me about|overview of|"
            r"eli5|in simple terms|history of|what happens when|meaning of",
            2.5,
        ),
        (
            r"\?|learn|understand|concept|theory|recommend(?:ation)?|should i (?:learn|use|pick)",
            1.0,
        ),
    ),
    Intent.FILE_OPERATION: _cues(
        (
            r"(?:move|copy|rename|delete|remove|list|read|open|show|print|cat|create|make|touch|"
            r"save|write|append|find|search|zip|unzip|compress|extract|download|upload|chmod|"
            r"archive) (?:\w+ ){0,3}(?:files?|folders?|director(?:y|ies)|dirs?|contents of|"
            r"the workspace)|(?:list|show) (?:me )?(?:all |the )?(?:files|folders)|"
            r"in the workspace|workspace|file ?system|mkdir|ls -|rm -|mv |cp |"
            r"save (?:it|this|that|the \w+) (?:to|as|in)|write (?:it|this|that|the \w+) to "
            r"(?:a )?file|read (?:the )?file|contents? of|(?:into|to) (?:a|the) (?:new )?"
            r"(?:folder|directory)",
            3.0,
        ),
        (r"files?|folders?|director(?:y|ies)|path|rename|move|copy|delete", 1.0),
    ),
    Intent.GENERAL_CHAT: _cues(
        (
            r"^(?:hi|hello|hey|yo|howdy|hiya|good (?:morning|afternoon|evening)|greetings)\b|"
            r"thanks?|thank you|thx|ty|cheers|appreciate|great job|well done|awesome|"
            r"you'?re (?:great|awesome|the best|amazing)|how are you|how'?s it going|"
            r"what'?s up|nice to meet|bye|goodbye|see you|have a (?:good|nice|great)|"
            r"who are you|what can you do|tell me a joke|are you (?:a bot|human|there)|"
            r"lol|haha|:\)|good night|happy (?:friday|monday|holidays)",
            3.0,
        ),
        (r"ok(?:ay)?|cool|nice|great|sure|yes|no worries|sounds good|perfect", 1.0),
    ),
}


# Further cues per intent, found while measuring the analyser on the labelled set in
# tests/data: symptoms users describe without saying "bug", review questions without
# "review", file requests that name a file, and so on.
_MORE: dict[Intent, tuple[Cue, ...]] = {
    Intent.CODE_REVIEW: _cues(
        (
            r"what do you think (?:of|about)|tell me (?:if|whether)|is (?:my|this|the) "
            r"(?:use|usage|implementation|approach|handling) of .{1,40}(?:correct|right|ok|safe)|"
            r"(?:is|are) (?:this|these|my|it) .{0,40}(?:correct|right|idiomatic|thread.safe)\?|"
            r"rate the (?:quality|code)|suggest improvements|follows? best practices|"
            r"too (?:loose|strict|clever)|look at (?:this|my) .{0,40}and tell|audit",
            3.0,
        ),
    ),
    Intent.DEBUGGING: _cues(
        (
            r"hangs? forever|never (?:set|called|runs?|fires?|arrives?|returns?|finishes)|"
            r"works (?:fine )?locally but|(?:different|wrong|incorrect) (?:totals|results|numbers)|"
            r"keeps? (?:growing|increasing|climbing)|gets? (?:killed|oom)|randomly|"
            r"(?:ran|runs|fired|executed|called) twice|double.(?:charged|counted|sent)|"
            r"is (?:very |really |too )?slow|slow(?:er)? than",
            2.5,
        ),
    ),
    Intent.REFACTORING: _cues(
        (
            r"turn .{0,40}? into (?:reusable|smaller|separate|pure)|replace .{0,60}? with|"
            r"cyclomatic|dead code|(?:output|behaviou?r) (?:identical|unchanged)|"
            r"keep (?:the )?(?:output|behaviou?r) (?:identical|the same)",
            2.5,
        ),
    ),
    Intent.TESTING: _cues(
        (r"^test (?:the|that|this|my)|malformed", 2.0),
    ),
    Intent.ARCHITECTURE_DESIGN: _cues(
        (
            r"how should (?:i|we) (?:model|organi[sz]e)|highly available|design how|"
            r"architect (?:a|an|the)",
            3.0,
        ),
    ),
    Intent.DOCUMENTATION: _cues(
        (
            r"faq|troubleshooting (?:section|guide|page)|descriptions|in (?:the|our) (?:docs|wiki)|"
            r"wiki page|readme|documentation",
            2.0,
        ),
    ),
    Intent.DEVOPS_DEPLOYMENT: _cues(
        (r"autoscal\w*|fargate|heroku", 2.0),
    ),
    Intent.DATA_ANALYSIS: _cues(
        (
            r"used (?:the )?most|most used|usage export|count .{0,40}? per|top \d+|"
            r"per (?:customer|category|country|endpoint|merchant)",
            2.5,
        ),
    ),
    Intent.RESEARCH_QUESTION: _cues(
        (r"^(?:what(?:'s| is| are)|explain|how does|how do)\b|what does .{1,40} mean", 1.5),
    ),
    Intent.FILE_OPERATION: _cues(
        (
            r"rename \S+\.\w+ to|save .{0,30}? (?:to|as|into) \S+\.\w+|"
            r"(?:into|to) \S+\.\w+$|show me (?:what'?s|the contents)|its contents|"
            r"(?:first|last) \d+ lines",
            3.0,
        ),
    ),
}
for _intent, _extra in _MORE.items():
    CUES[_intent] = CUES[_intent] + _extra
