ALTER TABLE {$NAMESPACE}_scim.scim_rollout
  ADD applyRequestedBy VARBINARY(64),
  ADD dateApplyRequested INT UNSIGNED;
