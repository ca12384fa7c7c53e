import { mount } from 'svelte';
import App from './App.svelte';
import { pathPicker, pickTransport } from './lib/client.js';
import { Studio, studioContext } from './lib/studio.svelte.js';
import './styles.css';

const studio = new Studio(pickTransport(window), pathPicker(window));
mount(App, { target: document.getElementById('app')!, context: studioContext(studio) });
