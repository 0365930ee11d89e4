"""Talking to Orthanc nodes over REST (with pyorthanc): sources, sinks and job following."""
