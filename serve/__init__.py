"""``python -m serve``: a local web app over the pipeline (try the models, read a revision).

Outside ``textgen`` on purpose: it knows DVC (revisions, the cache), which the library must not.
"""
