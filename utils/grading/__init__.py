"""Grading a deployment the way graders do (``check_config.py --round-trip URL``).

``tasks`` holds the built-in sample task and reads a task file; ``client`` sends
the task to a deployment and follows it to its end (a sync answer, or an early
one and then ``GET /builds/<nonce>``), with a receiver for the notification;
``grade`` grades what was published from its own clone and its own browser;
``round_trip`` ties them together and prints the table.

Never trusts the deployment's own report for a verdict (it is used only to find
the checks the deployment wrote), and never prints or stores the secret.
"""
