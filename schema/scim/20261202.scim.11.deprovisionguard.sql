ALTER TABLE {$NAMESPACE}_scim.scim_user
  ADD dateAccountCreated INT UNSIGNED;

ALTER TABLE {$NAMESPACE}_scim.scim_instance
  ADD guardShare DOUBLE,
  ADD guardMin INT UNSIGNED,
  ADD guardWindow INT UNSIGNED;
