"""A lean asyncio MQTT 3.1.1 client for the paths that move a whole fleet's messages: tens of thousands a second."""
