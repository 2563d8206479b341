ALTER TABLE {$NAMESPACE}_scim.scim_instance
  ADD dateStopped INT UNSIGNED;
