"""``python -m serve``: a local web app over the pipeline (try the models, read a revision).

Outside ``textgen`` on purpose: it knows DVC (revisions, the cache), which the library must not.
"""

# The page's bounds (flags of `python -m serve`): work at once, and what stays loaded.
MAX_STREAMS = 4  # generations at once: each keeps a core busy
MAX_MODELS = 4  # models kept loaded with their samplers: about 7 MiB each at the default size
MAX_REVISIONS = 8  # revisions whose repository (a DVC filesystem) stays open for reading
