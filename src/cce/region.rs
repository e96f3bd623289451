//! The regions the official SDK knows, and the base URL of each one's CCE endpoint.

/// The 33 regions of the SDK's region table, in its order.
pub const REGIONS: [&str; 33] = [
    "cn-north-1",
    "cn-north-2",
    "cn-north-4",
    "cn-north-9",
    "cn-north-11",
    "cn-north-12",
    "cn-south-1",
    "cn-south-2",
    "cn-south-4",
    "cn-east-2",
    "cn-east-3",
    "cn-east-4",
    "cn-east-5",
    "cn-southwest-2",
    "ap-southeast-1",
    "ap-southeast-2",
    "ap-southeast-3",
    "ap-southeast-4",
    "ap-southeast-5",
    "af-south-1",
    "af-north-1",
    "sa-brazil-1",
    "la-south-2",
    "la-north-2",
    "na-mexico-1",
    "ru-northwest-2",
    "ru-moscow-1",
    "tr-west-1",
    "ae-ad-1",
    "me-east-1",
    "my-kualalumpur-1",
    "eu-west-0",
    "eu-west-101",
];

/// The base URL of a known region's endpoint, `None` for a region the SDK does not know.
pub fn endpoint_for(region: &str) -> Option<String> {
    if !REGIONS.contains(&region) {
        return None;
    }
    let domain = if region == "eu-west-101" {
        "myhuaweicloud.eu"
    } else {
        "myhuaweicloud.com"
    };
    Some(format!("https://cce.{region}.{domain}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_regions_map_to_their_endpoint() {
        assert_eq!(
            endpoint_for("cn-north-4").as_deref(),
            Some("https://cce.cn-north-4.myhuaweicloud.com")
        );
        assert_eq!(
            endpoint_for("eu-west-101").as_deref(),
            Some("https://cce.eu-west-101.myhuaweicloud.eu")
        );
        assert_eq!(endpoint_for("mars-north-1"), None);
    }
}
