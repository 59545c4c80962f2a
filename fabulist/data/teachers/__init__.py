"""Teachers write one fable per prompt: `procedural` offline, `openai` over any OpenAI-compatible API."""
