ALTER TABLE {$NAMESPACE}_scim.scim_user
  ADD dateDeprovisioned INT UNSIGNED,
  ADD KEY key_deprovisionedat (dateDeprovisioned);

UPDATE {$NAMESPACE}_scim.scim_user SET dateDeprovisioned = dateModified
  WHERE isDeprovisioned = 1
    OR JSON_UNQUOTE(JSON_EXTRACT(attributes, '$.active')) = 'false';
