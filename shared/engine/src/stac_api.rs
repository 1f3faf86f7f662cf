//! A STAC API search as an input: `POST {api}/search` (or `GET`, for an API that only
//! answers that), paged through the `next` links, one page in memory at a time while the
//! next one downloads, each page's items parsed in parallel and handed on like the items
//! of an NDJSON file.
//!
//! Every request (the first, each page, each redirect) goes through the egress guard, so
//! the input allow-list and the host rules apply to the API host and to wherever its
//! `next` links and redirects point; the items' asset hrefs are checked like any item's.
//! 429 and 5xx answers and broken connections are retried with backoff (honouring
//! `Retry-After`); any other error answer stops the plan with the API's own message.
//!
//! Why not rustac's client (`stac-io`): it follows `next` links itself with no hook to
//! retry a page or to check where a link points, and it is async; the request and page
//! types are rustac's (`stac::api`).

use crate::dataset_filter::DatasetFilters;
use crate::error::{EngineError, Result};
use crate::sources::{parse_item, Parsed};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use stac::api::{ItemCollection, Search};
use std::time::Duration;

/// `inputs: [{stac_api: URL, ...}]` in a run file, or `--stac-api URL` and its flags.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct StacApiSearch {
    /// The API's root URL; its `/search` endpoint is searched.
    pub stac_api: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub collections: Vec<String>,
    /// West, south, east, north in degrees (west > east crosses the antimeridian).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bbox: Option<[f64; 4]>,
    /// A GeoJSON geometry, Feature or FeatureCollection (its features' geometries).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub intersects: Option<Value>,
    /// An RFC 3339 instant or interval (`2021-01-01/2021-12-31`, `../2020-06-30`); by
    /// default the run's temporal range.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub datetime: Option<String>,
    /// The query extension: `{"eo:cloud_cover": {"lt": 60}}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub query: Option<Map<String, Value>>,
    /// The filter extension: CQL2 text (a string) or CQL2 JSON (an object).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter: Option<Value>,
    /// Items per page asked for (the API may cap it lower).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u64>,
}

/// Items per page when the search does not say: large pages, few round trips (the
/// servers we know cap at 1,000 or more).
const DEFAULT_PAGE: u64 = 500;
/// Attempts per page before a 429 / 5xx / broken connection stops the plan.
const ATTEMPTS: u32 = 7;
/// The first retry's wait; doubled each time, up to `MAX_BACKOFF`.
const FIRST_BACKOFF: Duration = Duration::from_millis(500);
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// The longest `Retry-After` honoured.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(120);
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// The largest page read (a page of 1,000 Sentinel-2 items is about 10 MB).
const MAX_PAGE_BYTES: usize = 256 << 20;

impl StacApiSearch {
    fn fail(&self, why: impl Into<String>) -> EngineError {
        EngineError::Source { source_name: format!("STAC API {}", self.stac_api), why: why.into() }
    }

    /// Check what can be checked without the network: the URL, the allow-list, the
    /// bbox, the geometry, the datetime and the filter's syntax.
    pub fn validate(&self) -> Result<()> {
        let url = url::Url::parse(&self.stac_api).map_err(|e| self.fail(format!("not a URL ({e})")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(self.fail("give the API's http:// or https:// root URL"));
        }
        crate::access_policy::check_input(&self.stac_api)?;
        self.request(None).map(|_| ())
    }

    /// The search request: this search, with `default_datetime` (the run's temporal
    /// range) where it gives none.
    pub fn request(&self, default_datetime: Option<&str>) -> Result<Search> {
        let mut s = Search::new().collections(self.collections.clone()).limit(self.limit.unwrap_or(DEFAULT_PAGE));
        if let Some([w, south, e, n]) = self.bbox {
            if !(-90.0..=90.0).contains(&south) || !(-90.0..=90.0).contains(&n) || south > n {
                return Err(self.fail(format!(
                    "bbox [{w}, {south}, {e}, {n}]: give west, south, east, north in degrees (south <= north)"
                )));
            }
            if !(-180.0..=180.0).contains(&w) || !(-180.0..=180.0).contains(&e) {
                return Err(self.fail(format!("bbox [{w}, {south}, {e}, {n}]: longitudes must be -180 to 180")));
            }
            s = s.bbox(stac::Bbox::TwoDimensional([w, south, e, n]));
        }
        if let Some(g) = &self.intersects {
            s.intersects = Some(geometry(g).map_err(|why| self.fail(format!("intersects: {why}")))?);
        }
        if let Some(d) = self.datetime.as_deref().or(default_datetime) {
            s = s.datetime(d);
        }
        s.items.query = self.query.clone();
        if let Some(f) = &self.filter {
            s.items.filter = Some(parse_filter(f).map_err(|why| self.fail(format!("filter: {why}")))?);
        }
        s.valid().map_err(|e| self.fail(e.to_string()))
    }
}

/// A CQL2 filter, checked: text (a string) or JSON (an object).
pub fn parse_filter(f: &Value) -> std::result::Result<stac::api::Filter, String> {
    crate::dataset_filter::checked_cql2(f)?;
    Ok(match f {
        Value::String(text) => stac::api::Filter::Cql2Text(text.clone()),
        Value::Object(json) => stac::api::Filter::Cql2Json(json.clone()),
        _ => unreachable!("checked_cql2 takes only strings and objects"),
    })
}

/// A search area: a geometry, a Feature's geometry, or a FeatureCollection's (as one
/// GeometryCollection).
fn geometry(v: &Value) -> std::result::Result<geojson::Geometry, String> {
    let gj: geojson::GeoJson = serde_json::from_value(v.clone()).map_err(|e| format!("not GeoJSON: {e}"))?;
    match gj {
        geojson::GeoJson::Geometry(g) => Ok(g),
        geojson::GeoJson::Feature(f) => f.geometry.ok_or_else(|| "the Feature has no geometry".to_string()),
        geojson::GeoJson::FeatureCollection(fc) => {
            let mut gs: Vec<geojson::Geometry> = fc.features.into_iter().filter_map(|f| f.geometry).collect();
            match gs.len() {
                0 => Err("the FeatureCollection has no geometries".into()),
                1 => Ok(gs.remove(0)),
                _ => Ok(geojson::Geometry::new_geometry_collection(gs)),
            }
        }
    }
}

/// One request of the search: where, how, and with which body.
#[derive(Debug, Clone, PartialEq)]
struct PageRequest {
    url: String,
    /// `POST` with this body; `None`: `GET` (the query is in the URL).
    body: Option<Map<String, Value>>,
}

/// Why a request failed: worth retrying or not (decided on the status, never on text).
enum RequestError {
    Transient(String),
    /// 405: the API does not take this method (a GET-only `/search` refusing POST).
    MethodNotAllowed(String),
    Final(String),
}

/// Why a page could not be had (after the retries).
enum PageError {
    MethodNotAllowed(String),
    Failed(String),
}

impl PageError {
    fn into_error(self, search: &StacApiSearch) -> EngineError {
        match self {
            PageError::MethodNotAllowed(why) | PageError::Failed(why) => search.fail(why),
        }
    }
}

struct Client<'a> {
    search: &'a StacApiSearch,
    http: reqwest::blocking::Client,
}

impl<'a> Client<'a> {
    fn new(search: &'a StacApiSearch) -> Result<Self> {
        crate::access_policy::guard_http_inputs()?;
        let guard = stratus_raster::egress::proxy().ok_or_else(|| search.fail("the egress guard is not running"))?;
        let proxy = reqwest::Proxy::all(format!("http://{guard}")).map_err(|e| search.fail(e.to_string()))?;
        let http = reqwest::blocking::Client::builder()
            .proxy(proxy)
            .timeout(REQUEST_TIMEOUT)
            .connect_timeout(Duration::from_secs(20))
            .user_agent(concat!("stratus/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| search.fail(format!("cannot make an HTTP client: {e}")))?;
        Ok(Client { search, http })
    }

    /// A page, retried on 429, 5xx and broken connections.
    fn page(&self, req: &PageRequest) -> std::result::Result<ItemCollection, PageError> {
        let mut wait = FIRST_BACKOFF;
        for attempt in 1..=ATTEMPTS {
            match self.try_page(req) {
                Ok(page) => return Ok(page),
                Err((RequestError::Final(why), _)) => return Err(PageError::Failed(why)),
                Err((RequestError::MethodNotAllowed(why), _)) => return Err(PageError::MethodNotAllowed(why)),
                Err((RequestError::Transient(why), retry_after)) => {
                    if attempt == ATTEMPTS {
                        return Err(PageError::Failed(format!("{why}; gave up after {ATTEMPTS} attempts")));
                    }
                    let pause = retry_after.map_or(wait, |r| r.min(MAX_RETRY_AFTER));
                    tracing::warn!(api = %self.search.stac_api, attempt, error = %why, wait_ms = pause.as_millis() as u64, "STAC API request failed; retrying");
                    std::thread::sleep(pause);
                    wait = (wait * 2).min(MAX_BACKOFF);
                }
            }
        }
        unreachable!("the last attempt returns")
    }

    fn try_page(&self, req: &PageRequest) -> std::result::Result<ItemCollection, (RequestError, Option<Duration>)> {
        let what =
            format!("{} {}", if req.body.is_some() { "POST" } else { "GET" }, stratus_core::redact::redact(&req.url));
        let builder = match &req.body {
            Some(body) => self.http.post(&req.url).json(body),
            None => self.http.get(&req.url),
        };
        let resp = builder
            .header(reqwest::header::ACCEPT, "application/geo+json, application/json")
            .send()
            .map_err(|e| (RequestError::Transient(format!("{what}: {}", error_chain(&e))), None))?;
        let status = resp.status();
        let retry_after = resp
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let bytes = resp
            .bytes()
            .map_err(|e| (RequestError::Transient(format!("{what}: reading the answer: {}", error_chain(&e))), None))?;
        if !status.is_success() {
            let said: String = String::from_utf8_lossy(&bytes[..bytes.len().min(600)]).chars().collect();
            let why = format!("{what} answered {status}: {}", said.trim());
            let transient = status == reqwest::StatusCode::TOO_MANY_REQUESTS || status.is_server_error();
            return Err((
                if transient {
                    RequestError::Transient(why)
                } else if status == reqwest::StatusCode::METHOD_NOT_ALLOWED {
                    RequestError::MethodNotAllowed(why)
                } else {
                    RequestError::Final(format!("{why}; check the search's collections, query and filter"))
                },
                retry_after,
            ));
        }
        if bytes.len() > MAX_PAGE_BYTES {
            return Err((RequestError::Final(format!("{what}: a page larger than {} MB", MAX_PAGE_BYTES >> 20)), None));
        }
        serde_json::from_slice::<ItemCollection>(&bytes)
            .map_err(|e| (RequestError::Final(format!("{what}: not a STAC ItemCollection ({e})")), None))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s += &format!(": {c}");
        src = c.source();
    }
    s
}

/// The request for the page after `page`, from its `next` link (POST bodies merged as the
/// STAC API spec says), or None at the last page.
fn next_request(page: &ItemCollection, current: &PageRequest) -> Option<PageRequest> {
    let link = page.links.iter().find(|l| l.rel == "next")?;
    let post = link.method.as_deref().is_some_and(|m| m.eq_ignore_ascii_case("POST"));
    if !post {
        return Some(PageRequest { url: link.href.clone(), body: None });
    }
    let body = match (&link.body, link.merge.unwrap_or(false)) {
        (Some(b), true) => {
            let mut merged = current.body.clone().unwrap_or_default();
            merged.extend(b.clone());
            merged
        }
        (Some(b), false) => b.clone(),
        (None, _) => current.body.clone().unwrap_or_default(),
    };
    Some(PageRequest { url: link.href.clone(), body: Some(body) })
}

fn search_url(search: &StacApiSearch) -> String {
    format!("{}/search", search.stac_api.trim_end_matches('/'))
}

/// The first request, as a POST. Its filter is CQL2 JSON, the one language every server
/// takes in a POST body (stac-fastapi refuses CQL2 text there).
fn post_request(search: &StacApiSearch, request: &Search) -> Result<PageRequest> {
    let request = request.clone().into_cql2_json().map_err(|e| search.fail(format!("filter: {e}")))?;
    match serde_json::to_value(&request).map_err(|e| search.fail(e.to_string()))? {
        Value::Object(body) => Ok(PageRequest { url: search_url(search), body: Some(body) }),
        _ => unreachable!("a search serialises to an object"),
    }
}

/// The first request as a GET, for an API that refuses POST.
fn get_request(search: &StacApiSearch, request: &Search) -> Result<PageRequest> {
    let get: stac::api::GetSearch = request.clone().try_into().map_err(|e: stac::Error| {
        search.fail(format!(
            "the API refuses POST /search, and this search cannot be sent by GET ({e}): use filter (CQL2 text) instead of query"
        ))
    })?;
    let query = serde_urlencoded_query(&get).map_err(|e| search.fail(e))?;
    Ok(PageRequest { url: format!("{}?{query}", search_url(search)), body: None })
}

fn serde_urlencoded_query(get: &stac::api::GetSearch) -> std::result::Result<String, String> {
    let Value::Object(fields) = serde_json::to_value(get).map_err(|e| e.to_string())? else {
        return Err("a GET search serialises to an object".into());
    };
    let mut url = url::Url::parse("http://x/").expect("a valid URL");
    {
        let mut q = url.query_pairs_mut();
        for (k, v) in fields {
            match v {
                Value::Null => {}
                Value::String(s) => {
                    q.append_pair(&k, &s);
                }
                other => {
                    q.append_pair(&k, &other.to_string());
                }
            }
        }
    }
    Ok(url.query().unwrap_or_default().to_string())
}

/// Totals of one search, for the plan's log and summary.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SearchStats {
    pub pages: u64,
    pub items: u64,
    /// What the API said matched (`numberMatched`), when it says.
    pub matched: Option<u64>,
}

/// Every item the search finds that the `filters` keep, parsed, passed through `map` in parallel and handed to
/// `on_batch` one page at a time, in the API's order. The next page downloads while one
/// is parsed; no more than two pages are held.
pub fn for_each_batch<T: Send>(
    search: &StacApiSearch,
    default_datetime: Option<&str>,
    filters: &DatasetFilters,
    map: &(dyn Fn(Parsed) -> T + Sync),
    on_batch: &mut (dyn FnMut(Vec<T>) -> Result<()> + Send),
) -> Result<SearchStats> {
    crate::access_policy::check_input(&search.stac_api)?;
    let request = search.request(default_datetime)?;
    let client = Client::new(search)?;
    let post = post_request(search, &request)?;
    let source = format!("STAC API {}", search.stac_api);
    let (tx, rx) = std::sync::mpsc::sync_channel::<Result<(PageRequest, ItemCollection)>>(1);
    let stop = &std::sync::atomic::AtomicBool::new(false);
    std::thread::scope(|scope| {
        // The fetcher owns the sender: when it returns, the pages end.
        scope.spawn(move || {
            let mut req = post;
            let first = match client.page(&req) {
                Err(PageError::MethodNotAllowed(_)) => {
                    tracing::info!(api = %search.stac_api, "the API refuses POST /search: searching with GET");
                    get_request(search, &request).and_then(|get| {
                        req = get;
                        client.page(&req).map_err(|e| e.into_error(search))
                    })
                }
                other => other.map_err(|e| e.into_error(search)),
            };
            let mut page = match first {
                Ok(p) => p,
                Err(e) => {
                    let _ = tx.send(Err(e));
                    return;
                }
            };
            loop {
                let next = next_request(&page, &req);
                if tx.send(Ok((req.clone(), page))).is_err() || stop.load(std::sync::atomic::Ordering::Relaxed) {
                    return;
                }
                let Some(next) = next else { return };
                if next == req {
                    let _ = tx.send(Err(search.fail(format!(
                        "its next link repeats the request it came from ({}): the API pages in a loop",
                        next.url
                    ))));
                    return;
                }
                req = next;
                page = match client.page(&req) {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(e.into_error(search)));
                        return;
                    }
                };
            }
        });
        let mut stats = SearchStats::default();
        let result = (|| {
            for received in rx.iter() {
                let (req, page) = received?;
                stats.pages += 1;
                stats.items += page.items.len() as u64;
                stats.matched = stats.matched.or(page.number_matched);
                let base = req.url.clone();
                let batch: Vec<T> = page
                    .items
                    .into_par_iter()
                    .filter_map(|item| parse_item(Value::Object(item), &base, &source, filters).map(map))
                    .collect();
                on_batch(batch)?;
                if stats.pages % 20 == 0 {
                    tracing::info!(api = %search.stac_api, pages = stats.pages, items = stats.items, matched = ?stats.matched, "STAC API search: reading");
                }
            }
            Ok(stats)
        })();
        // Stop the fetcher (it may be blocked sending the next page).
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        drop(rx);
        result
    })
    .inspect(|s| {
        tracing::info!(api = %search.stac_api, pages = s.pages, items = s.items, matched = ?s.matched, "STAC API search: done");
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn search(v: Value) -> StacApiSearch {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn a_search_becomes_the_request_the_api_expects() {
        let s = search(json!({
            "stac_api": "https://earth-search.aws.element84.com/v1",
            "collections": ["sentinel-2-l2a"],
            "bbox": [130.0, -30.0, 131.0, -29.0],
            "query": {"eo:cloud_cover": {"lt": 60}},
            "filter": "platform = 'sentinel-2a'"
        }));
        s.validate().unwrap();
        let r = s.request(Some("2021-01-01T00:00:00Z/2021-12-31T23:59:59Z")).unwrap();
        let body = serde_json::to_value(&r).unwrap();
        assert_eq!(body["collections"], json!(["sentinel-2-l2a"]));
        assert_eq!(body["bbox"], json!([130.0, -30.0, 131.0, -29.0]));
        assert_eq!(body["limit"], json!(DEFAULT_PAGE));
        assert_eq!(body["filter-lang"], json!("cql2-text"));
        assert_eq!(body["query"]["eo:cloud_cover"]["lt"], json!(60));
        assert!(body["datetime"].as_str().unwrap().starts_with("2021-01-01"), "{body}");
        // A datetime of the search's own wins over the run's range.
        let own = StacApiSearch { datetime: Some("2020-06-01T00:00:00Z/..".into()), ..s.clone() };
        let body = serde_json::to_value(own.request(Some("2021-01-01T00:00:00Z/..")).unwrap()).unwrap();
        assert!(body["datetime"].as_str().unwrap().starts_with("2020-06-01"), "{body}");
        let post = post_request(&s, &r).unwrap();
        assert_eq!(post.url, "https://earth-search.aws.element84.com/v1/search");
        let body = post.body.unwrap();
        assert_eq!(body["filter-lang"], json!("cql2-json"));
        assert_eq!(body["filter"]["op"], json!("="), "{body:?}");
        // GET carries all but the query extension, which has no GET form.
        let no_query = StacApiSearch { query: None, ..s.clone() };
        let get = get_request(&no_query, &no_query.request(None).unwrap()).unwrap();
        assert!(
            get.url.contains("collections=sentinel-2-l2a") && get.url.contains("filter-lang=cql2-text"),
            "{}",
            get.url
        );
        let e = get_request(&s, &r).unwrap_err().to_string();
        assert!(e.contains("use filter"), "{e}");
    }

    #[test]
    fn bad_searches_name_what_to_fix() {
        let base = json!({"stac_api": "https://example.com/api"});
        let bad = |patch: Value, expect: &str| {
            let mut v = base.clone();
            v.as_object_mut().unwrap().extend(patch.as_object().unwrap().clone());
            let e = search(v.clone()).validate().expect_err(&v.to_string()).to_string();
            let api = v["stac_api"].as_str().unwrap();
            assert!(e.contains(expect) && e.contains(api), "{e}");
        };
        bad(json!({"bbox": [0, 10, 1, 5]}), "south <= north");
        bad(json!({"bbox": [200, 0, 201, 1]}), "longitudes");
        bad(json!({"filter": "(eo:cloud_cover < 3"}), "not CQL2 text");
        bad(json!({"filter": {"op": 3}}), "not CQL2 JSON");
        bad(json!({"filter": 7}), "give CQL2 text");
        bad(json!({"intersects": {"type": "Point"}}), "intersects");
        bad(json!({"stac_api": "ftp://example.com"}), "http");
        let unknown: std::result::Result<StacApiSearch, _> =
            serde_json::from_value(json!({"stac_api": "https://x", "collection": ["a"]}));
        assert!(unknown.unwrap_err().to_string().contains("unknown field `collection`"));
    }

    #[test]
    fn a_feature_collection_searches_all_its_geometries() {
        let square =
            |x: f64| json!({"type": "Polygon", "coordinates": [[[x, 0.0], [x + 1.0, 0.0], [x + 1.0, 1.0], [x, 0.0]]]});
        let fc = json!({"type": "FeatureCollection", "features": [
            {"type": "Feature", "properties": {}, "geometry": square(0.0)},
            {"type": "Feature", "properties": {}, "geometry": square(5.0)}]});
        let g = geometry(&fc).unwrap();
        assert!(
            matches!(g.value, geojson::GeometryValue::GeometryCollection { ref geometries } if geometries.len() == 2)
        );
        let one = json!({"type": "Feature", "properties": {}, "geometry": square(0.0)});
        assert!(matches!(geometry(&one).unwrap().value, geojson::GeometryValue::Polygon { .. }));
    }

    #[test]
    fn next_links_are_followed_as_the_spec_says() {
        let page = |link: Value| -> ItemCollection {
            serde_json::from_value(json!({"type": "FeatureCollection", "features": [], "links": [link]})).unwrap()
        };
        let first = PageRequest {
            url: "http://a/search".into(),
            body: Some(json!({"limit": 2, "collections": ["c"]}).as_object().unwrap().clone()),
        };
        // pgstac: POST with the whole body.
        let n = next_request(
            &page(json!({"rel": "next", "href": "http://a/search", "method": "POST", "body": {"token": "next:x"}})),
            &first,
        )
        .unwrap();
        assert_eq!(n.body.unwrap(), *json!({"token": "next:x"}).as_object().unwrap());
        // merge: true keeps the search and adds the token.
        let n = next_request(&page(json!({"rel": "next", "href": "http://a/search", "method": "POST", "body": {"token": "t"}, "merge": true})), &first).unwrap();
        assert_eq!(n.body.unwrap(), *json!({"limit": 2, "collections": ["c"], "token": "t"}).as_object().unwrap());
        // GET (the default method).
        let n = next_request(&page(json!({"rel": "next", "href": "http://a/search?page=2"})), &first).unwrap();
        assert_eq!(n, PageRequest { url: "http://a/search?page=2".into(), body: None });
        assert!(next_request(&page(json!({"rel": "prev", "href": "http://a/search?page=0"})), &first).is_none());
    }
}
