// Azure OpenAI account with key (local) authentication disabled, and its model deployments.
// Deployments are created one at a time (@batchSize(1)): the service rejects concurrent deployment
// writes on one account.

import { modelDeployment } from 'types.bicep'

param name string
param location string
param tags object = {}

@description('Model deployments to create, in order.')
param deployments modelDeployment[]

resource account 'Microsoft.CognitiveServices/accounts@2025-06-01' = {
  name: name
  location: location
  tags: tags
  kind: 'OpenAI'
  sku: {
    name: 'S0'
  }
  properties: {
    customSubDomainName: name
    disableLocalAuth: true
    publicNetworkAccess: 'Enabled'
    networkAcls: {
      defaultAction: 'Allow'
    }
  }
}

@batchSize(1)
resource modelDeployments 'Microsoft.CognitiveServices/accounts/deployments@2025-06-01' = [
  for deployment in deployments: {
    parent: account
    name: deployment.name
    sku: {
      name: deployment.sku
      capacity: deployment.capacity
    }
    properties: {
      model: {
        format: 'OpenAI'
        name: deployment.model
        version: deployment.version
      }
      versionUpgradeOption: 'OnceCurrentVersionExpired'
    }
  }
]

output name string = account.name
output id string = account.id
output endpoint string = account.properties.endpoint
