<?php

/**
 * A SCIM token can not be issued or rotated, for a reason an administrator
 * can fix (for example, the configured bot username belongs to a human).
 */
final class PhabricatorScimTokenException extends Exception {}
