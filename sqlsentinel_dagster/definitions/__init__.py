"""The Dagster layer: what an alerts file becomes in Dagster (jobs mode, checks mode), its schedules and sensors,
its resources and admin jobs, and the Component. Every module here may import Dagster; nothing below it does."""
