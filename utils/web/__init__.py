"""HTTP pages for people: the dashboard, the build page, sign-in sessions, security headers, the local publisher's
repositories and Pages, and the buffering front that serves them all."""
