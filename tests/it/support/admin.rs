//! An HTTP client for herald's dashboard and admin API, as curl would use it: optional bearer
//! token, optional extra headers (an `Origin`, `Sec-Fetch-Site`), redirects not followed.

use std::net::SocketAddr;

use reqwest::header::HeaderMap;
use serde_json::Value;

pub struct Admin {
    pub base: String,
    pub token: Option<String>,
    client: reqwest::Client,
}

/// One answer: status, headers, body text.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    pub body: String,
}

impl Answer {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {} {}", self.status, self.body))
    }
}

impl Admin {
    pub fn new(addr: SocketAddr, token: Option<&str>) -> Admin {
        Admin {
            base: format!("http://{addr}"),
            token: token.map(String::from),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    pub fn without_token(&self) -> Admin {
        Admin {
            base: self.base.clone(),
            token: None,
            client: self.client.clone(),
        }
    }

    async fn send(&self, mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Answer {
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = req.send().await.expect("the admin server answers");
        Answer {
            status: resp.status().as_u16(),
            headers: resp.headers().clone(),
            body: resp.text().await.unwrap_or_default(),
        }
    }

    pub async fn get_with(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let req = self.client.get(format!("{}{path}", self.base));
        self.send(req, headers).await
    }

    pub async fn get(&self, path: &str) -> Answer {
        self.get_with(path, &[]).await
    }

    /// GET, expecting 200 and JSON.
    pub async fn json(&self, path: &str) -> Value {
        let a = self.get(path).await;
        assert_eq!(a.status, 200, "GET {path}: {}", a.body);
        a.json()
    }

    pub async fn post_with(&self, path: &str, body: &Value, headers: &[(&str, &str)]) -> Answer {
        let req = self.client.post(format!("{}{path}", self.base)).json(body);
        self.send(req, headers).await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Answer {
        self.post_with(path, body, &[]).await
    }

    /// A POST with a raw body and content type (a form, say).
    pub async fn post_raw(
        &self,
        path: &str,
        content_type: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Answer {
        let req = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string());
        self.send(req, headers).await
    }
}

/// A free loopback port (for the binary, which is told its address).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}
