"""`vidcap serve`: a local web page and HTTP API for captions, scenes, attention and search.

    engine.py   the `Engine` interface the app calls, and `ModelEngine` on a run directory
    app.py      the FastAPI app (routes, error answers, the page's static files)
    uploads.py  streamed, size-limited uploads in a private folder, always deleted
    worker.py   one model thread, a bounded queue, a time limit per request
    server.py   `serve`: load once, run under uvicorn
    static/     the page (plain HTML/CSS/JS, no outside request)
"""
