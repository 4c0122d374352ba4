"""Speech out: `speaker` renders and plays answers (the skill's side), `worker` is the helper
process that runs pyttsx3 (espeak-ng). Both ends of their JSON-lines protocol live here; this
file imports neither, so the worker process loads nothing but itself."""
