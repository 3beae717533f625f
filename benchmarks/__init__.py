"""vstream benchmarks: one engine, the same prompts, every path a user can take to its tokens.

``python -m benchmarks.stream`` measures the raw AsyncLLM DELTA loop against the Stream API, the
``%%vstream`` magic, the Panel and (``--paths server``) ``vllm serve`` + openai on one engine;
``python -m benchmarks.startup`` start-up to the first token, raw vs vstream, in fresh processes;
``python -m benchmarks.report FILES --write README.md`` the README's tables.

Modules: ``stream`` and ``startup`` (command lines), ``paths`` (raw / API / magic / panel runners),
``server`` (vllm serve), ``models`` (the engines started), ``records`` (typed results, their JSON),
``stats`` (medians and intervals), ``probes`` (machine names), ``report`` (tables, verdicts).
"""
