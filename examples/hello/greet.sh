#!/bin/sh
# Says who it greets, as which user, and on which kernel it runs.
echo "hello, $WHO: uid $(id -u) on kernel $(uname -r)"
