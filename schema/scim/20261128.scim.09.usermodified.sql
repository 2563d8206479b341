ALTER TABLE {$NAMESPACE}_scim.scim_user
  ADD KEY key_modified (dateModified);
