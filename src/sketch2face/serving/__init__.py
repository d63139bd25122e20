"""The model tier: the one interface the app uses to get faces (``client.ModelClient``: in
process, or over HTTP to a model server) and that model server (``server``, ``sketch2face
serve-model``). It knows the pipeline and the candidates, not the database or the web app."""
