pub fn parse(
    _req: &crate::pb::MountRequest,
    _defaults: &super::RequestDefaults,
) -> Result<super::MountRequest, super::RequestError> {
    Err(super::RequestError(
        "request parsing is not built yet".into(),
    ))
}
