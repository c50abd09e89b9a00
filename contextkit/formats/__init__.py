"""The window in other providers' request shapes (the OpenAI form is `Prompt.to_list`)."""
