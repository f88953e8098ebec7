"""OurAPI: our main API (chats, agents, messages)."""
