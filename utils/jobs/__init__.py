"""Running a build: the pipeline of stages in order and the notification of the evaluation URL."""
