"""The Tether wire contract shared by the controller and the agent: topics, payload models, enums, lifecycles."""
