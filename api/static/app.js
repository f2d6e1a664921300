// The audiochat page: record (hold to talk), pick a file or type a question; upload it to
// POST /v1/jobs, then follow the job's events (EventSource) and show them as they arrive.
// Plain JavaScript served as a static file: no build step, nothing fetched from elsewhere.
"use strict";

(() => {
  const KEY_STORAGE = "audiochat.apiKey";
  // Shorter than this, a press was a tap, not speech.
  const MIN_RECORDING_SECONDS = 0.5;
  // EventSource gives up on some errors (a 401 or 404 answer); we retry this many times.
  const MAX_STREAM_RETRIES = 5;

  const $ = (selector) => document.querySelector(selector);
  const recordButton = $("#record");
  const recordLabel = $("#record-label");
  const form = $("#ask");
  const questionInput = $("#question");
  const fileInput = $("#file");
  const fileName = $("#file-name");
  const notice = $("#notice");
  const jobList = $("#jobs");
  const empty = $("#empty");
  const template = $("#job-template");
  const keyDialog = $("#key-dialog");
  const keyInput = $("#key-input");
  const keyReason = $("#key-reason");

  function say(message) {
    notice.textContent = message || "";
  }

  // ---- API calls, with the API key when the server asks for one ----------------------------

  class ProblemError extends Error {
    constructor(status, problem) {
      super(problem.detail || problem.title || `HTTP ${status}`);
      this.status = status;
      this.code = problem.code || "error";
    }
  }

  function askForKey(reason) {
    keyReason.textContent = reason;
    keyInput.value = "";
    return new Promise((resolve) => {
      const done = () => {
        keyDialog.removeEventListener("close", done);
        const key = keyDialog.returnValue === "ok" ? keyInput.value.trim() : "";
        resolve(key || null);
      };
      keyDialog.addEventListener("close", done);
      keyDialog.showModal();
      keyInput.focus();
    });
  }

  $("#key-cancel").addEventListener("click", () => keyDialog.close("cancel"));

  async function api(path, options = {}) {
    for (;;) {
      const key = sessionStorage.getItem(KEY_STORAGE);
      const headers = { Accept: "application/json", ...(options.headers || {}) };
      if (key) headers.Authorization = `Bearer ${key}`;
      const response = await fetch(path, { ...options, headers });
      const body = await response.json().catch(() => ({}));
      if (response.ok) return body;
      if (response.status === 401) {
        // The key is asked for once and kept for this tab; a rejected key is asked for again.
        sessionStorage.removeItem(KEY_STORAGE);
        const entered = await askForKey(
          key
            ? "That key was not accepted. Enter a valid API key."
            : "This server needs an API key. It is kept for this tab only.",
        );
        if (!entered) throw new ProblemError(401, body);
        sessionStorage.setItem(KEY_STORAGE, entered);
        continue;
      }
      throw new ProblemError(response.status, body);
    }
  }

  // ---- One entry in the list per question ---------------------------------------------------

  class JobView {
    constructor(kind, asked, audioUrl) {
      this.node = template.content.firstElementChild.cloneNode(true);
      this.status = this.node.querySelector(".status");
      this.elapsed = this.node.querySelector(".elapsed");
      this.transcriptBox = this.node.querySelector(".transcript");
      this.transcript = this.node.querySelector(".transcript .text");
      this.answerBox = this.node.querySelector(".answer");
      this.answer = this.node.querySelector(".answer .text");
      this.error = this.node.querySelector(".error");
      this.node.querySelector(".kind").textContent = kind;
      if (asked) {
        const node = this.node.querySelector(".asked");
        node.textContent = asked;
        node.hidden = false;
      }
      if (audioUrl) {
        const player = this.node.querySelector(".playback");
        player.src = audioUrl;
        player.hidden = false;
      }
      this.started = performance.now();
      this.timer = setInterval(() => this.tick(), 100);
      this.setStatus("uploading");
      jobList.prepend(this.node);
      empty.hidden = true;
    }

    tick() {
      this.elapsed.textContent = `${((performance.now() - this.started) / 1000).toFixed(1)} s`;
    }

    setStatus(status) {
      this.status.textContent = status;
      this.status.dataset.status = status;
      this.node.dataset.status = status;
    }

    setJob(job) {
      this.node.dataset.jobId = job.id;
      this.setStatus(job.status);
    }

    addTranscript(text, whole) {
      this.transcriptBox.hidden = false;
      this.transcript.textContent = whole ? text : this.transcript.textContent + text;
    }

    addAnswer(text, whole) {
      this.answerBox.hidden = false;
      this.answer.textContent = whole ? text : this.answer.textContent + text;
    }

    fail(code, message) {
      this.error.hidden = false;
      this.error.textContent = `${code}: ${message}`;
    }

    finish(status) {
      this.setStatus(status);
      this.tick();
      clearInterval(this.timer);
      this.node.classList.add("finished");
    }
  }

  // ---- Following a job's events --------------------------------------------------------------

  function eventsUrl(job, lastEventId) {
    // With API keys on, links.events carries a short-lived token: EventSource sends no headers.
    let url = (job.links && job.links.events) || `/v1/jobs/${job.id}/events`;
    if (lastEventId) url += `${url.includes("?") ? "&" : "?"}last_event_id=${lastEventId}`;
    return url;
  }

  function follow(job, view) {
    let lastEventId = 0;
    let retries = 0;
    let ended = false;

    const open = () => {
      const source = new EventSource(eventsUrl(job, lastEventId));
      const on = (name, handler) =>
        source.addEventListener(name, (event) => {
          lastEventId = Number(event.lastEventId) || lastEventId;
          retries = 0;
          handler(JSON.parse(event.data));
        });
      on("status", (data) => view.setStatus(data.status));
      on("transcript.delta", (data) => view.addTranscript(data.text, false));
      on("transcript.completed", (data) => view.addTranscript(data.text, true));
      on("answer.delta", (data) => view.addAnswer(data.text, false));
      on("answer.completed", (data) => view.addAnswer(data.text, true));
      on("done", (data) => {
        ended = true;
        source.close();
        view.finish(data.status);
      });
      // A job's own `error` event has data; the browser's connection errors have none.
      source.addEventListener("error", (event) => {
        if (event instanceof MessageEvent && event.data) {
          const data = JSON.parse(event.data);
          lastEventId = Number(event.lastEventId) || lastEventId;
          view.fail(data.code, data.message);
          return;
        }
        if (ended || source.readyState !== EventSource.CLOSED) return; // it reconnects itself
        source.close();
        if (retries >= MAX_STREAM_RETRIES) {
          showRecord(job, view);
          return;
        }
        retries += 1;
        setTimeout(open, 500 * 2 ** retries);
      });
    };
    open();
  }

  async function showRecord(job, view) {
    // The stream could not be followed: show the job as its record has it now.
    try {
      const record = await api(`/v1/jobs/${job.id}`);
      if (record.transcript) view.addTranscript(record.transcript, true);
      if (record.answer) view.addAnswer(record.answer, true);
      if (record.error) view.fail(record.error.code, record.error.message);
      view.finish(record.status);
    } catch (error) {
      view.fail(error.code || "error", `lost the job's events: ${error.message}`);
      view.finish("unknown");
    }
  }

  // ---- Submitting -----------------------------------------------------------------------------

  async function submit({ audio, audioName, question, kind, audioUrl }) {
    const view = new JobView(kind, question, audioUrl);
    let request;
    if (audio) {
      const body = new FormData();
      body.append("audio", audio, audioName);
      if (question) body.append("question", question);
      request = { method: "POST", body };
    } else {
      request = {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify({ question }),
      };
    }
    try {
      const job = await api("/v1/jobs", request);
      view.setJob(job);
      follow(job, view);
    } catch (error) {
      view.fail(error.code || "error", error.message);
      view.finish("failed");
    }
  }

  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const question = questionInput.value.trim();
    const file = fileInput.files[0];
    if (!file && !question) {
      say("Type a question, choose an audio file, or hold the button and speak.");
      return;
    }
    say("");
    submit({
      audio: file,
      audioName: file && file.name,
      question,
      kind: file ? `File · ${file.name}` : "Typed",
      audioUrl: file && URL.createObjectURL(file),
    });
    questionInput.value = "";
    fileInput.value = "";
    fileName.hidden = true;
  });

  fileInput.addEventListener("change", () => {
    const file = fileInput.files[0];
    fileName.hidden = !file;
    fileName.textContent = file ? `Audio: ${file.name} (press Send)` : "";
  });

  // ---- Hold to talk ---------------------------------------------------------------------------

  const recording = { pressed: false, recorder: null, stream: null, chunks: [], started: 0 };
  let recordTimer = null;

  function preferredType() {
    const types = ["audio/webm;codecs=opus", "audio/ogg;codecs=opus", "audio/mp4", "audio/webm"];
    return types.find((type) => MediaRecorder.isTypeSupported(type)) || "";
  }

  function extensionFor(type) {
    if (type.includes("ogg")) return "ogg";
    if (type.includes("mp4")) return "m4a";
    return "webm";
  }

  async function startRecording() {
    if (recording.pressed) return;
    recording.pressed = true;
    if (!navigator.mediaDevices || !window.MediaRecorder) {
      say("This browser cannot record here (it needs https or localhost); choose a file.");
      recording.pressed = false;
      return;
    }
    let stream;
    try {
      stream = await navigator.mediaDevices.getUserMedia({ audio: true });
    } catch (error) {
      recording.pressed = false;
      say(`No microphone: ${error.message}`);
      return;
    }
    if (!recording.pressed) {
      // Released while the browser was still asking for the microphone.
      stream.getTracks().forEach((track) => track.stop());
      return;
    }
    const type = preferredType();
    const recorder = new MediaRecorder(stream, type ? { mimeType: type } : undefined);
    recording.recorder = recorder;
    recording.stream = stream;
    recording.chunks = [];
    recorder.addEventListener("dataavailable", (event) => {
      if (event.data.size) recording.chunks.push(event.data);
    });
    recorder.addEventListener("stop", finishRecording);
    recorder.start(250);
    recording.started = performance.now();
    recordButton.classList.add("recording");
    recordButton.dataset.seconds = "0";
    recordTimer = setInterval(() => {
      const seconds = (performance.now() - recording.started) / 1000;
      recordButton.dataset.seconds = seconds.toFixed(1);
      recordLabel.textContent = `Recording… ${seconds.toFixed(1)} s`;
    }, 100);
    say("");
  }

  function stopRecording() {
    recording.pressed = false;
    if (recording.recorder && recording.recorder.state === "recording") {
      recording.recorder.stop();
    }
  }

  function finishRecording() {
    const { recorder, stream, chunks, started } = recording;
    clearInterval(recordTimer);
    recordButton.classList.remove("recording");
    recordLabel.textContent = "Hold to talk";
    delete recordButton.dataset.seconds;
    stream.getTracks().forEach((track) => track.stop());
    recording.recorder = null;
    recording.stream = null;
    const seconds = (performance.now() - started) / 1000;
    if (seconds < MIN_RECORDING_SECONDS || !chunks.length) {
      say("Hold the button down while you speak, then let go.");
      return;
    }
    const type = recorder.mimeType || preferredType() || "audio/webm";
    const audio = new Blob(chunks, { type });
    const question = questionInput.value.trim();
    questionInput.value = "";
    submit({
      audio,
      audioName: `recording.${extensionFor(type)}`,
      question,
      kind: `Recording · ${seconds.toFixed(1)} s`,
      audioUrl: URL.createObjectURL(audio),
    });
  }

  recordButton.addEventListener("pointerdown", (event) => {
    if (event.button !== 0) return;
    event.preventDefault();
    recordButton.setPointerCapture(event.pointerId);
    startRecording();
  });
  recordButton.addEventListener("pointerup", stopRecording);
  recordButton.addEventListener("pointercancel", stopRecording);
  recordButton.addEventListener("keydown", (event) => {
    if ((event.key === " " || event.key === "Enter") && !event.repeat) {
      event.preventDefault();
      startRecording();
    }
  });
  recordButton.addEventListener("keyup", (event) => {
    if (event.key === " " || event.key === "Enter") stopRecording();
  });
  // A click is a press and release: it must not also submit anything.
  recordButton.addEventListener("click", (event) => event.preventDefault());
})();
