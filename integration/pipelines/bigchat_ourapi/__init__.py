"""The main sync: BigChat conversations into OurAPI chats, agents and messages."""
