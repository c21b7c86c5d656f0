"""Stages that let a user or operator steer what an agent does, without changing the agent."""
