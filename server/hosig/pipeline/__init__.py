"""The pipeline: one request -> a stream of events (`run`), behind the CLI, the server and tests.

`run(request, cancel=None, engine=None, ...) -> Iterator[Event]` (see `hosig.pipeline.run`);
`GenerateRequest` validates requests everywhere; `Engine` keeps models and scenes warm.
"""

from hosig.pipeline.engine import Engine, EngineConfig, default_engine
from hosig.pipeline.request import GenerateRequest, PlanRequest, parse_request
from hosig.pipeline.run import generate, plan_only, run

__all__ = ["Engine", "EngineConfig", "GenerateRequest", "PlanRequest", "default_engine", "generate", "parse_request", "plan_only", "run"]
