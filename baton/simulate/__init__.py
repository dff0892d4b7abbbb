"""`baton simulate`: a realistic funnel driven through the departments' public HTTP APIs.

`scenarios` holds the presets, `plan` turns a seed and a scenario into every lead's script (pure),
`driver` plays the scripts against the running services, `run` ties it together for the CLI and
`demo` loads the data set `baton up` starts with.
"""

from baton.simulate.http import SimulationError
from baton.simulate.plan import Plan, Policies, make_plan
from baton.simulate.run import local_urls, run_command, simulate, tokens_for
from baton.simulate.scenarios import SCENARIOS, Scenario

__all__ = [
    "SCENARIOS",
    "Plan",
    "Policies",
    "Scenario",
    "SimulationError",
    "local_urls",
    "make_plan",
    "run_command",
    "simulate",
    "tokens_for",
]
