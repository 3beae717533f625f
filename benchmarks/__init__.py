"""vstream benchmarks: one engine, the same prompts, every path a user can take to its tokens.

``python -m benchmarks.stream --device cpu|cuda --out FILE.json`` measures the raw AsyncLLM
DELTA loop against the Stream API, the ``%%vstream`` magic and the Panel on one shared engine,
plus start-up, memory and (with ``--alternatives``) ``vllm serve`` + OpenAI client and
``transformers``' TextIteratorStreamer. ``python -m benchmarks.report`` tabulates the results.

Modules: ``stream`` (command line, orchestration), ``_worker`` (one fresh process per engine
mode), ``_paths`` (raw / API / magic / panel runners), ``_alternatives`` (server, transformers),
``_probes`` (memory, device names), ``_stats`` (summaries), ``_verdicts`` (targets, tables).
"""
